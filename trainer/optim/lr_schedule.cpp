// LrSchedule: linear warmup from a fraction of the peak rate, then constant or cosine decay.
#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace lctrain {
namespace {
constexpr double kPi = 3.14159265358979323846;  // M_PI is POSIX, not ISO C++17
}  // namespace

LrSchedule::LrSchedule(double lr, const LrScheduleOptions& schedule, int64_t total_steps)
    : lr_(lr),
      cosine_(schedule.type == "cosine"),
      warmup_steps_(schedule.warmup_steps),
      warmup_start_factor_(schedule.warmup_start_factor),
      min_lr_factor_(schedule.min_lr_factor),
      total_steps_(total_steps) {
  // TrainConfig validates these too; a schedule built in code gets the same guarantees.
  LCTRAIN_CHECK(schedule.type == "constant" || schedule.type == "cosine",
                "schedule.type must be constant or cosine, got '{}'", schedule.type);
  LCTRAIN_CHECK(lr_ > 0.0 && std::isfinite(lr_), "optimizer.lr must be > 0, got {}", lr_);
  LCTRAIN_CHECK(total_steps_ > 0, "training.steps must be > 0, got {}", total_steps_);
  LCTRAIN_CHECK(warmup_steps_ >= 0, "schedule.warmup_steps must be >= 0, got {}", warmup_steps_);
  LCTRAIN_CHECK(warmup_start_factor_ > 0.0 && warmup_start_factor_ <= 1.0,
                "schedule.warmup_start_factor must be in (0, 1], got {}", warmup_start_factor_);
  LCTRAIN_CHECK(min_lr_factor_ >= 0.0 && min_lr_factor_ <= 1.0,
                "schedule.min_lr_factor must be in [0, 1], got {}", min_lr_factor_);
}

double LrSchedule::lr_at(int64_t step) const {
  LCTRAIN_CHECK(step >= 0, "learning-rate schedule: step must be >= 0, got {}", step);
  if (step < warmup_steps_) {
    const double progress = static_cast<double>(step) / static_cast<double>(warmup_steps_);
    return lr_ * (warmup_start_factor_ + (1.0 - warmup_start_factor_) * progress);
  }
  if (!cosine_) return lr_;
  // Decay spans the steps after warmup; when warmup covers the whole run there is nothing to
  // decay over, and max(1, ...) keeps the division defined for steps past the end.
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps_ - warmup_steps_));
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps_) / span);
  const double cosine = 0.5 * (1.0 + std::cos(kPi * progress));
  return lr_ * (min_lr_factor_ + (1.0 - min_lr_factor_) * cosine);
}

}  // namespace lctrain
