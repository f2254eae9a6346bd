// The events of a profiled window, as lctrain writes them and as PyTorch's profiler exports them:
// Chrome trace JSON ({"traceEvents": [{"ph": "X", "name", "cat", "ts", "dur", "pid", "tid"}]},
// times in microseconds). One reader for both, so that lctrain's steps and a transformers step
// profiled with torch.profiler are summarised by the same rules (profile/step_breakdown.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lctrain {

enum class TraceEventKind {
  kHostOp,            // an operator or function on a host thread (ATen op, autograd node)
  kAnnotation,        // a named scope (lctrain::step, lctrain::optimizer, ...)
  kDevice,            // a GPU kernel, copy or memset
  kDeviceAnnotation,  // a named scope projected onto the device: the kernels it launched
};

struct TraceEvent {
  std::string name;
  TraceEventKind kind = TraceEventKind::kHostOp;
  uint64_t thread = 0;  // host thread, or the device stream
  double start_us = 0.0;
  double duration_us = 0.0;
  // Autograd's sequence number: a backward node carries its forward operator's (-1: none).
  int64_t sequence = -1;
  double end_us() const { return start_us + duration_us; }
};

// Writes `events` as a Chrome trace (chrome://tracing, Perfetto); the file is replaced whole.
void write_chrome_trace(const std::filesystem::path& path, const std::vector<TraceEvent>& events);

// Reads the complete ("X") events of a Chrome trace written by lctrain or by torch.profiler's
// export_chrome_trace; other phases (flows, counters, metadata) are skipped. A file that is not
// such a trace is an error naming it.
std::vector<TraceEvent> read_chrome_trace(const std::filesystem::path& path);

}  // namespace lctrain
