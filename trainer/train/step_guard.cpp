#include "train/step_guard.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace lctrain {

StepGuard::StepGuard(int64_t max_rejected_in_a_row, double loss_spike_factor)
    : max_rejected_in_a_row_(max_rejected_in_a_row), loss_spike_factor_(loss_spike_factor) {
  LCTRAIN_CHECK(max_rejected_in_a_row > 0, "training.max_nonfinite_steps must be > 0, got {}",
                max_rejected_in_a_row);
}

std::string StepGuard::problem(double loss, double grad_norm) const {
  if (!std::isfinite(loss)) return fmt::format("the loss is {}", loss);
  if (!std::isfinite(grad_norm)) return fmt::format("the gradient norm is {}", grad_norm);
  if (loss_spike_factor_ > 0.0 && history_.size() >= kMinHistory) {
    std::vector<double> sorted(history_.begin(), history_.end());
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    const double median = sorted[sorted.size() / 2];
    const double highest = *std::max_element(history_.begin(), history_.end());
    // Both, because the median alone misjudges a mix of easy and hard batches: with one
    // sequence per step, a run of rows of passkey documents (loss 0.2) puts the median far below
    // the prose rows that follow (loss 2-4), which are no spike: the recent steps had them too.
    if (loss > loss_spike_factor_ * median && loss > highest) {
      return fmt::format(
          "the loss {:.6g} is over {} x the median {:.6g} of the last {} steps and above all of "
          "them (highest {:.6g})",
          loss, loss_spike_factor_, median, history_.size(), highest);
    }
  }
  return "";
}

void StepGuard::record(bool applied, double loss) {
  if (!applied) {
    ++rejected_in_a_row_;
    ++rejected_total_;
    return;
  }
  rejected_in_a_row_ = 0;
  history_.push_back(loss);
  if (history_.size() > kHistory) history_.pop_front();
}

void StepGuard::restore(const std::vector<double>& history, int64_t rejected_total) {
  history_.assign(history.begin(), history.end());
  while (history_.size() > kHistory) history_.pop_front();
  rejected_total_ = rejected_total;
  rejected_in_a_row_ = 0;
}

}  // namespace lctrain
