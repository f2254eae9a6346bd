// StepGuard: decides whether a step's update may touch the model. A step whose loss or global
// gradient norm is not finite, or whose loss jumps past loss_spike_factor x the median of the
// recent good steps and past the highest of them (a diverging run that no NaN check sees), is
// rejected; too many rejected in a row stop the run. Every rank sees the same figures
// (all-reduced), so all decide alike.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace lctrain {

class StepGuard {
 public:
  // loss_spike_factor <= 0 disables the spike rule.
  StepGuard(int64_t max_rejected_in_a_row, double loss_spike_factor);

  // Why a step with these figures must not update the model; "" when it may.
  std::string problem(double loss, double grad_norm) const;
  // Records a step: applied ones join the loss history, rejected ones count.
  void record(bool applied, double loss);
  // Too many rejected steps in a row: the run must stop.
  bool exhausted() const { return rejected_in_a_row_ >= max_rejected_in_a_row_; }
  int64_t rejected_in_a_row() const { return rejected_in_a_row_; }
  int64_t rejected_total() const { return rejected_total_; }

  // The recent good losses, oldest first: checkpoints keep them so a resumed run judges spikes
  // against the same history.
  std::vector<double> history() const { return {history_.begin(), history_.end()}; }
  void restore(const std::vector<double>& history, int64_t rejected_total);

  static constexpr size_t kHistory = 32;    // good steps the median is taken over
  static constexpr size_t kMinHistory = 4;  // the spike rule waits for this many

 private:
  int64_t max_rejected_in_a_row_;
  double loss_spike_factor_;
  std::deque<double> history_;
  int64_t rejected_in_a_row_ = 0;
  int64_t rejected_total_ = 0;
};

}  // namespace lctrain
