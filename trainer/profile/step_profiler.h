// Profiling a few training steps with LibTorch's profiler (Kineto; CUDA kernels on a GPU):
//   LCTRAIN_PROFILE=trace.json lctrain train ...
// Rank 0 records LCTRAIN_PROFILE_STEPS steps (default 3) after skipping LCTRAIN_PROFILE_SKIP
// (default 2: allocator and kernel warm-up), then writes the Chrome trace to the given path,
// its breakdown (profile/step_breakdown.h) to <path>.summary.json, and logs the breakdown.
// Other ranks run unprofiled.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <optional>

namespace lctrain {

struct ProfileSettings {
  std::filesystem::path trace;
  int64_t skip = 2;
  int64_t steps = 3;
};

// The settings from LCTRAIN_PROFILE / _STEPS / _SKIP, or nothing when LCTRAIN_PROFILE is unset
// or empty. Checked before a run touches its folder: a path that cannot be written or a count
// that is not a number is an error naming the variable.
std::optional<ProfileSettings> profile_settings_from_environment();

class StepProfiler {
 public:
  // Profiles steps of the run [first_step, total_steps) as `settings` say, when `active`.
  StepProfiler(std::optional<ProfileSettings> settings, bool active, int64_t first_step,
               int64_t total_steps, torch::Device device);
  ~StepProfiler();  // stops a profile left running (a run stopped early); writes nothing
  StepProfiler(const StepProfiler&) = delete;
  StepProfiler& operator=(const StepProfiler&) = delete;

  void before_step(int64_t step);
  void after_step(int64_t step);

 private:
  void finish();

  std::optional<ProfileSettings> settings_;
  int64_t begin_ = 0;  // first profiled step
  int64_t end_ = 0;    // one past the last
  torch::Device device_;
  bool running_ = false;
};

}  // namespace lctrain
