// LrSchedule: the learning rate of every optimizer step, as a pure function of the step number so
// that a resumed run needs nothing but the step it resumes at.
#pragma once

#include <cstdint>
#include <string>

namespace lctrain {

// The paper's schedule (section 3.1): linear warmup over warmup_steps from warmup_start_factor*lr
// to lr, then constant; or, with type "cosine", cosine decay to min_lr_factor*lr over the
// remaining steps. Step numbers are 0-based optimizer steps.
// The schedule's shape; the training config's `schedule` section is this struct.
struct LrScheduleOptions {
  std::string type = "constant";     // constant (paper: linear warmup then constant) | cosine
  int64_t warmup_steps = 20;         // 0 = no warmup
  double warmup_start_factor = 0.1;  // warmup starts at 10% of lr
  double min_lr_factor = 0.0;        // cosine floor as a fraction of lr
};

class LrSchedule {
 public:
  LrSchedule(double lr, const LrScheduleOptions& schedule, int64_t total_steps);

  // Pure function of step: resume needs no other state. Steps past the end keep the final value.
  double lr_at(int64_t step) const;

 private:
  double lr_;
  bool cosine_;
  int64_t warmup_steps_;
  double warmup_start_factor_;
  double min_lr_factor_;
  int64_t total_steps_;
};

}  // namespace lctrain
