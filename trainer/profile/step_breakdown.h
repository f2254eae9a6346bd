// Where a training step's time goes: GEMMs, attention, elementwise work (norms, RoPE, SwiGLU,
// casts, the loss), the optimizer, communication and copies, and idle time, from the events of
// a profiled window (profile/trace_events.h).
//
// With device events (a GPU run) the device's timeline is split: each kernel by the lctrain
// scope that launched it (lctrain::optimizer, lctrain::attention, lctrain::communication, as
// projected onto the device) or else by its name; idle is the window's time with no kernel
// running; kernels that overlap (several streams) are counted in full and their overlap
// reported. Without device events (a CPU run) the host thread that ran the steps is split by
// each operator's self time (its time minus its children's), in the same categories; the step
// scope's own self time (host code between operators, waits) is idle.
#pragma once

#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "profile/trace_events.h"
#include "util/profile_scopes.h"

namespace lctrain {

enum class TimeCategory { kGemm, kAttention, kElementwise, kOptimizer, kCommunication, kIdle };
inline constexpr size_t kTimeCategories = 6;
const char* category_name(TimeCategory category);

// The category of an operator or kernel by its name alone (no enclosing scope).
TimeCategory classify_by_name(const std::string& name);

struct StepBreakdown {
  std::string timeline;  // "device" or "host"
  int64_t steps = 0;
  double wall_us = 0.0;  // first step's start to the last step's end (device: the last kernel's)
  std::array<double, kTimeCategories> category_us{};  // idle included
  double overlap_us = 0.0;  // device: kernel time that ran beside other kernels
};

// The breakdown of the steps marked by `step_scope` annotations. Throws when there are none.
StepBreakdown break_down(const std::vector<TraceEvent>& events,
                         const std::string& step_scope = kStepScope);

// A table: per category, milliseconds per step and share of the wall time.
std::string format_breakdown(const StepBreakdown& breakdown);
nlohmann::json breakdown_json(const StepBreakdown& breakdown);

}  // namespace lctrain
