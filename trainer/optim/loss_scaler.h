// Dynamic loss scaling for fp16 training (as torch.cuda.amp.GradScaler and Megatron do): the loss
// is multiplied by a large scale so that small fp16 gradients do not flush to zero; before the
// optimizer step the gradients are divided back. A step whose gradients overflowed (inf/nan on any
// rank) is skipped and the scale halves; after `growth_interval` clean steps in a row it doubles.
// bf16 and fp32 need none of this: the scaler is then disabled and its scale is 1.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "distributed/communicator.h"

namespace lctrain {

struct LossScalerOptions {
  double initial_scale = 65536.0;  // 2^16, GradScaler's default
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

class DynamicLossScaler {
 public:
  DynamicLossScaler(LossScalerOptions options, bool enabled);

  bool enabled() const { return enabled_; }
  double scale() const { return enabled_ ? scale_ : 1.0; }
  int64_t growth_tracker() const { return growth_tracker_; }

  // Divides every defined gradient by the scale; collective: true when all of them are finite on
  // every rank, i.e. the step may be taken.
  bool unscale_and_check(const std::vector<torch::Tensor>& parameters, Communicator& communicator);
  // After each step: back off on overflow, grow after growth_interval clean steps.
  void update(bool finite);
  // Restores what a checkpoint saved.
  void load_state(double scale, int64_t growth_tracker);

 private:
  LossScalerOptions options_;
  bool enabled_;
  double scale_;
  int64_t growth_tracker_ = 0;
};

}  // namespace lctrain
