#include "profile/step_profiler.h"

#include <torch/cuda.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "profile/step_breakdown.h"
#include "profile/trace_events.h"
#include "util/error.h"
#include "util/logging.h"
#include "util/torch_compat_profiler.h"

namespace lctrain {
namespace {

namespace kineto = torch::autograd::profiler;
namespace impl = torch::profiler::impl;

int64_t count_from_environment(const char* variable, int64_t fallback, int64_t minimum) {
  const char* text = std::getenv(variable);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  LCTRAIN_CHECK(*end == '\0' && value >= minimum && value <= 1000000,
                "{}='{}' is not a step count (a whole number from {})", variable, text, minimum);
  return value;
}

std::set<impl::ActivityType> activities_for(const torch::Device& device) {
  std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
  if (device.is_cuda()) activities.insert(impl::ActivityType::CUDA);
  return activities;
}

impl::ProfilerConfig kineto_config() { return impl::ProfilerConfig(impl::ProfilerState::KINETO); }

TraceEvent to_trace_event(const compat::ProfiledEvent& event) {
  TraceEvent converted;
  converted.name = event.name();
  const bool on_device = event.deviceType() != c10::DeviceType::CPU;
  const bool scope = converted.name.rfind("lctrain::", 0) == 0;
  converted.kind = on_device ? (scope ? TraceEventKind::kDeviceAnnotation : TraceEventKind::kDevice)
                             : (scope ? TraceEventKind::kAnnotation : TraceEventKind::kHostOp);
  converted.thread =
      on_device ? static_cast<uint64_t>(event.deviceResourceId()) : event.startThreadId();
  converted.start_us = static_cast<double>(compat::event_start_ns(event)) / 1000.0;
  converted.duration_us = static_cast<double>(compat::event_duration_ns(event)) / 1000.0;
  converted.sequence = on_device ? -1 : event.sequenceNr();
  return converted;
}

}  // namespace

std::optional<ProfileSettings> profile_settings_from_environment() {
  const char* trace = std::getenv("LCTRAIN_PROFILE");
  if (trace == nullptr || *trace == '\0') return std::nullopt;
  ProfileSettings settings;
  settings.trace = trace;
  settings.steps = count_from_environment("LCTRAIN_PROFILE_STEPS", settings.steps, 1);
  settings.skip = count_from_environment("LCTRAIN_PROFILE_SKIP", settings.skip, 0);
  std::error_code error;
  LCTRAIN_CHECK(!std::filesystem::is_directory(settings.trace, error),
                "LCTRAIN_PROFILE={} is a folder: give the trace file's path (e.g. {}/trace.json)",
                trace, trace);
  const auto folder =
      settings.trace.has_parent_path() ? settings.trace.parent_path() : std::filesystem::path(".");
  LCTRAIN_CHECK(std::filesystem::is_directory(folder, error),
                "LCTRAIN_PROFILE={}: the folder {} does not exist", trace, folder.string());
  // Written at the end of the profiled steps: a path that cannot be written fails now instead.
  const auto probe = settings.trace.string() + ".probe." + std::to_string(::getpid());
  {
    std::ofstream out(probe);
    LCTRAIN_CHECK(out.good(), "LCTRAIN_PROFILE={}: cannot write in {}", trace, folder.string());
  }
  std::filesystem::remove(probe, error);
  return settings;
}

StepProfiler::StepProfiler(std::optional<ProfileSettings> settings, bool active, int64_t first_step,
                           int64_t total_steps, torch::Device device)
    : device_(device) {
  if (!settings || !active || first_step >= total_steps) return;
  // The steps asked for, moved earlier when the run is too short to skip as many.
  end_ = std::min(total_steps, first_step + settings->skip + settings->steps);
  begin_ = std::max(first_step, end_ - settings->steps);
  settings_ = std::move(settings);
}

StepProfiler::~StepProfiler() {
  if (!running_) return;
  try {
    kineto::disableProfiler();
  } catch (const std::exception& error) {
    log()->warn("stopping the profiler failed: {}", error.what());
  }
}

void StepProfiler::before_step(int64_t step) {
  if (!settings_ || step != begin_) return;
  const auto activities = activities_for(device_);
  kineto::prepareProfiler(kineto_config(), activities);
  kineto::enableProfiler(
      kineto_config(), activities,
      {at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION, at::RecordScope::USER_SCOPE});
  running_ = true;
  log()->info("profiling steps {} to {} into {}", begin_ + 1, end_, settings_->trace.string());
}

void StepProfiler::after_step(int64_t step) {
  if (running_ && step + 1 == end_) finish();
}

void StepProfiler::finish() {
  if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  running_ = false;
  const std::unique_ptr<kineto::ProfilerResult> result = kineto::disableProfiler();
  std::vector<TraceEvent> events;
  events.reserve(result->events().size());
  for (const compat::ProfiledEvent& event : result->events()) {
    events.push_back(to_trace_event(event));
  }
  write_chrome_trace(settings_->trace, events);
  const StepBreakdown breakdown = break_down(events);
  const auto summary = settings_->trace.string() + ".summary.json";
  std::ofstream(summary) << breakdown_json(breakdown).dump(2) << '\n';
  log()->info("profile written to {} ({} events); where the time went:\n{}",
              settings_->trace.string(), events.size(), format_breakdown(breakdown));
}

}  // namespace lctrain
