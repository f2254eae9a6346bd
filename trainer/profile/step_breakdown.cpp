#include "profile/step_breakdown.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <unordered_map>

#include "util/error.h"

namespace lctrain {
namespace {

bool has_any(const std::string& text, std::initializer_list<const char*> parts) {
  return std::any_of(parts.begin(), parts.end(),
                     [&](const char* part) { return text.find(part) != std::string::npos; });
}

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// A scope that claims everything inside it, whatever the operators' names.
std::optional<TimeCategory> scope_category(const std::string& name) {
  if (name == kOptimizerScope) return TimeCategory::kOptimizer;
  if (name == kAttentionScope) return TimeCategory::kAttention;
  if (name == kCommunicationScope) return TimeCategory::kCommunication;
  return std::nullopt;
}

// Categories that the operators inside inherit: the GEMMs of a math attention or of the
// optimizer are attention or optimizer time, not GEMM time.
bool inherited(TimeCategory category) {
  return category == TimeCategory::kAttention || category == TimeCategory::kOptimizer ||
         category == TimeCategory::kCommunication;
}

size_t slot(TimeCategory category) { return static_cast<size_t>(category); }

// Autograd's names for the backward of an operator: "MmBackward0", and the engine's
// "autograd::engine::evaluate_function: MmBackward0" around it.
bool is_backward_node(const std::string& name) {
  return name.find("Backward") != std::string::npos ||
         name.rfind("autograd::engine::evaluate_function", 0) == 0;
}

struct Window {
  double start = 0.0;
  double end = 0.0;
};

std::vector<const TraceEvent*> steps_of(const std::vector<TraceEvent>& events,
                                        const std::string& step_scope) {
  std::vector<const TraceEvent*> steps;
  for (const TraceEvent& event : events) {
    if (event.kind == TraceEventKind::kAnnotation && event.name == step_scope) {
      steps.push_back(&event);
    }
  }
  LCTRAIN_CHECK(!steps.empty(), "the profile holds no step: no '{}' scope in it", step_scope);
  std::sort(steps.begin(), steps.end(),
            [](const TraceEvent* a, const TraceEvent* b) { return a->start_us < b->start_us; });
  return steps;
}

// Host timeline: self time of every operator on the thread that ran the steps.
void split_host(const std::vector<TraceEvent>& events, const std::vector<const TraceEvent*>& steps,
                const std::string& step_scope, StepBreakdown& result) {
  const uint64_t thread = steps.front()->thread;
  std::vector<const TraceEvent*> ordered;
  for (const TraceEvent& event : events) {
    if (event.thread == thread &&
        (event.kind == TraceEventKind::kHostOp || event.kind == TraceEventKind::kAnnotation)) {
      ordered.push_back(&event);
    }
  }
  std::sort(ordered.begin(), ordered.end(), [](const TraceEvent* a, const TraceEvent* b) {
    return a->start_us != b->start_us ? a->start_us < b->start_us : a->duration_us > b->duration_us;
  });
  struct Open {
    double end;
    std::optional<TimeCategory> category;  // empty: outside every step, not counted
  };
  std::vector<Open> stack;
  // The category that a forward operator inherited from its scope, by sequence number: its
  // backward node (which runs outside that scope) counts there too.
  std::unordered_map<int64_t, TimeCategory> forward_scopes;
  double in_steps = 0.0;
  for (const TraceEvent* event : ordered) {
    while (!stack.empty() && stack.back().end <= event->start_us) stack.pop_back();
    const std::optional<TimeCategory> parent = stack.empty() ? std::nullopt : stack.back().category;
    std::optional<TimeCategory> category;
    if (event->kind == TraceEventKind::kAnnotation && event->name == step_scope) {
      category = TimeCategory::kIdle;  // its self time: host code between operators, waits
      in_steps += event->duration_us;
    } else if (parent) {
      const auto scoped = event->kind == TraceEventKind::kAnnotation
                              ? scope_category(event->name)
                              : std::optional<TimeCategory>();
      const auto forward = event->sequence >= 0 && is_backward_node(event->name)
                               ? forward_scopes.find(event->sequence)
                               : forward_scopes.end();
      if (inherited(*parent)) {
        category = parent;
        if (event->sequence >= 0) forward_scopes.emplace(event->sequence, *parent);
      } else if (forward != forward_scopes.end()) {
        category = forward->second;
      } else if (scoped) {
        category = scoped;
      } else if (event->kind == TraceEventKind::kAnnotation) {
        category = parent;  // an unknown scope is transparent
      } else {
        category = classify_by_name(event->name);
      }
    }
    const double end =
        stack.empty() ? event->end_us() : std::min(event->end_us(), stack.back().end);
    if (category) {
      const double length = std::max(0.0, end - event->start_us);
      result.category_us[slot(*category)] += length;
      if (parent) result.category_us[slot(*parent)] -= length;  // the parent's self time
    }
    stack.push_back({end, category});
  }
  // Time between the profiled steps (logging, checkpoints) is idle too.
  result.category_us[slot(TimeCategory::kIdle)] += std::max(0.0, result.wall_us - in_steps);
}

// Device timeline: kernels by the scope that launched them, else by name; idle = no kernel.
void split_device(const std::vector<TraceEvent>& events, const Window& window,
                  StepBreakdown& result) {
  std::vector<const TraceEvent*> scopes;
  std::vector<std::pair<double, double>> busy;
  for (const TraceEvent& event : events) {
    if (event.kind == TraceEventKind::kDeviceAnnotation && scope_category(event.name)) {
      scopes.push_back(&event);
    }
  }
  double counted = 0.0;
  for (const TraceEvent& event : events) {
    if (event.kind != TraceEventKind::kDevice) continue;
    const double start = std::max(event.start_us, window.start);
    const double end = std::min(event.end_us(), window.end);
    if (end <= start) continue;
    const double middle = (event.start_us + event.end_us()) / 2.0;
    TimeCategory category = classify_by_name(event.name);
    for (const TraceEvent* scope : scopes) {
      if (scope->start_us <= middle && middle <= scope->end_us()) {
        category = *scope_category(scope->name);
        break;
      }
    }
    result.category_us[slot(category)] += end - start;
    counted += end - start;
    busy.emplace_back(start, end);
  }
  std::sort(busy.begin(), busy.end());
  double covered = 0.0;
  double reach = window.start;
  for (const auto& [start, end] : busy) {
    if (end <= reach) continue;
    covered += end - std::max(start, reach);
    reach = end;
  }
  result.category_us[slot(TimeCategory::kIdle)] = std::max(0.0, result.wall_us - covered);
  result.overlap_us = counted - covered;
}

}  // namespace

const char* category_name(TimeCategory category) {
  switch (category) {
    case TimeCategory::kGemm:
      return "GEMM";
    case TimeCategory::kAttention:
      return "attention";
    case TimeCategory::kElementwise:
      return "elementwise";
    case TimeCategory::kOptimizer:
      return "optimizer";
    case TimeCategory::kCommunication:
      return "communication/copies";
    case TimeCategory::kIdle:
      break;
  }
  return "idle";
}

TimeCategory classify_by_name(const std::string& name) {
  if (const auto scoped = scope_category(name)) return *scoped;
  const std::string lower = lowercase(name);
  if (has_any(lower, {"adam"})) return TimeCategory::kOptimizer;
  if (has_any(lower,
              {"nccl", "gloo", "c10d", "allgather", "all_gather", "reduce_scatter", "reducescatter",
               "allreduce", "all_reduce", "broadcast", "memcpy", "memset"})) {
    return TimeCategory::kCommunication;
  }
  // Before GEMM: memory-efficient attention kernels carry "cutlass" in their names.
  if (has_any(lower, {"flash", "fmha", "attention", "sdpa"})) return TimeCategory::kAttention;
  if (has_any(lower, {"gemm", "cutlass", "xmma", "nvjet", "cublas", "matmul"}) ||
      lower == "aten::mm" || lower == "aten::addmm" || lower == "aten::bmm" ||
      lower == "aten::baddbmm" || lower == "aten::addbmm") {
    return TimeCategory::kGemm;
  }
  return TimeCategory::kElementwise;
}

StepBreakdown break_down(const std::vector<TraceEvent>& events, const std::string& step_scope) {
  const std::vector<const TraceEvent*> steps = steps_of(events, step_scope);
  Window window{steps.front()->start_us, 0.0};
  for (const TraceEvent* step : steps) window.end = std::max(window.end, step->end_us());
  const bool device = std::any_of(events.begin(), events.end(), [](const TraceEvent& event) {
    return event.kind == TraceEventKind::kDevice;
  });
  if (device) {
    // The device runs behind the host: the last step's kernels end after its scope. (The
    // profiler waits for the device before it stops, so every kernel recorded is the steps'.)
    for (const TraceEvent& event : events) {
      if (event.kind == TraceEventKind::kDevice && event.end_us() > window.start) {
        window.end = std::max(window.end, event.end_us());
      }
    }
  }
  StepBreakdown result;
  result.timeline = device ? "device" : "host";
  result.steps = static_cast<int64_t>(steps.size());
  result.wall_us = window.end - window.start;
  if (device) {
    split_device(events, window, result);
  } else {
    split_host(events, steps, step_scope, result);
  }
  return result;
}

std::string format_breakdown(const StepBreakdown& breakdown) {
  const double steps = static_cast<double>(std::max<int64_t>(1, breakdown.steps));
  std::string text =
      fmt::format("{} step(s) on the {} timeline, {:.1f} ms per step\n", breakdown.steps,
                  breakdown.timeline, breakdown.wall_us / steps / 1000.0);
  text += fmt::format("  {:<22} {:>10} {:>7}\n", "category", "ms/step", "share");
  for (size_t index = 0; index < kTimeCategories; ++index) {
    const double us = breakdown.category_us[index];
    text += fmt::format("  {:<22} {:>10.2f} {:>6.1f}%\n",
                        category_name(static_cast<TimeCategory>(index)), us / steps / 1000.0,
                        breakdown.wall_us > 0.0 ? 100.0 * us / breakdown.wall_us : 0.0);
  }
  if (breakdown.overlap_us > 0.0) {
    text += fmt::format(
        "  (kernels running beside other kernels: {:.2f} ms/step, counted in "
        "their categories)\n",
        breakdown.overlap_us / steps / 1000.0);
  }
  return text;
}

nlohmann::json breakdown_json(const StepBreakdown& breakdown) {
  const double steps = static_cast<double>(std::max<int64_t>(1, breakdown.steps));
  nlohmann::json categories = nlohmann::json::object();
  for (size_t index = 0; index < kTimeCategories; ++index) {
    categories[category_name(static_cast<TimeCategory>(index))] =
        breakdown.category_us[index] / steps / 1000.0;
  }
  return {{"timeline", breakdown.timeline},
          {"steps", breakdown.steps},
          {"ms_per_step", breakdown.wall_us / steps / 1000.0},
          {"category_ms_per_step", categories},
          {"overlap_ms_per_step", breakdown.overlap_us / steps / 1000.0}};
}

}  // namespace lctrain
