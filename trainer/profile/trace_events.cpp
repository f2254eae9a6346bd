#include "profile/trace_events.h"

#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace lctrain {
namespace {

const char* category_of(TraceEventKind kind) {
  switch (kind) {
    case TraceEventKind::kAnnotation:
      return "user_annotation";
    case TraceEventKind::kDevice:
      return "kernel";
    case TraceEventKind::kDeviceAnnotation:
      return "gpu_user_annotation";
    case TraceEventKind::kHostOp:
      break;
  }
  return "cpu_op";
}

// torch.profiler's categories: "kernel", "gpu_memcpy", "gpu_memset" run on the device;
// "user_annotation" (record_function) and "gpu_user_annotation" are scopes; the rest (cpu_op,
// python_function, cuda_runtime, ...) happen on host threads.
TraceEventKind kind_of(const std::string& category) {
  if (category == "kernel" || category == "gpu_memcpy" || category == "gpu_memset" ||
      category == "Kernel" || category == "Memcpy" || category == "Memset") {
    return TraceEventKind::kDevice;
  }
  if (category == "user_annotation") return TraceEventKind::kAnnotation;
  if (category == "gpu_user_annotation") return TraceEventKind::kDeviceAnnotation;
  return TraceEventKind::kHostOp;
}

// Chrome traces give thread ids as numbers or strings ("stream 7").
uint64_t thread_of(const nlohmann::json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) return static_cast<uint64_t>(value.get<int64_t>());
  if (value.is_string()) return std::hash<std::string>{}(value.get<std::string>());
  return 0;
}

bool on_device(TraceEventKind kind) {
  return kind == TraceEventKind::kDevice || kind == TraceEventKind::kDeviceAnnotation;
}

}  // namespace

void write_chrome_trace(const std::filesystem::path& path, const std::vector<TraceEvent>& events) {
  nlohmann::json list = nlohmann::json::array();
  for (const TraceEvent& event : events) {
    list.push_back({{"ph", "X"},
                    {"name", event.name},
                    {"cat", category_of(event.kind)},
                    {"ts", event.start_us},
                    {"dur", event.duration_us},
                    {"pid", on_device(event.kind) ? 1 : 0},
                    {"tid", event.thread}});
    if (event.sequence >= 0) list.back()["args"] = {{"Sequence number", event.sequence}};
  }
  // Per process: two runs profiling into one path each write whole files, the last one wins.
  const auto temporary = path.string() + ".partial." + std::to_string(::getpid());
  {
    std::ofstream out(temporary);
    LCTRAIN_CHECK(out.good(), "cannot write the profile trace {}", temporary);
    out << nlohmann::json{{"traceEvents", list}, {"displayTimeUnit", "ms"}}.dump() << '\n';
    LCTRAIN_CHECK(out.good(), "writing the profile trace {} failed", temporary);
  }
  std::filesystem::rename(temporary, path);
}

std::vector<TraceEvent> read_chrome_trace(const std::filesystem::path& path) {
  std::ifstream in(path);
  LCTRAIN_CHECK(in.good(), "cannot read the profile trace {}", path.string());
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& error) {
    throw Error("{} is not a JSON profile trace: {}", path.string(), error.what());
  }
  const nlohmann::json* list = &document;
  if (document.is_object()) {
    LCTRAIN_CHECK(document.contains("traceEvents") && document["traceEvents"].is_array(),
                  "{} has no \"traceEvents\" list: not a Chrome trace", path.string());
    list = &document["traceEvents"];
  }
  LCTRAIN_CHECK(list->is_array(), "{} is not a Chrome trace", path.string());
  std::vector<TraceEvent> events;
  for (const nlohmann::json& entry : *list) {
    if (!entry.is_object() || entry.value("ph", "") != "X") continue;
    if (!entry.contains("ts") || !entry["ts"].is_number() || !entry.contains("dur") ||
        !entry["dur"].is_number()) {
      continue;
    }
    TraceEvent event;
    event.name = entry.value("name", "");
    event.kind = kind_of(entry.value("cat", ""));
    event.thread = entry.contains("tid") ? thread_of(entry["tid"]) : 0;
    event.start_us = entry["ts"].get<double>();
    event.duration_us = std::max(0.0, entry["dur"].get<double>());
    if (entry.contains("args") && entry["args"].is_object()) {
      const nlohmann::json& arguments = entry["args"];
      if (arguments.contains("Sequence number") && arguments["Sequence number"].is_number()) {
        event.sequence = arguments["Sequence number"].get<int64_t>();
      }
    }
    events.push_back(std::move(event));
  }
  return events;
}

}  // namespace lctrain
