#include "optim/loss_scaler.h"

#include "util/error.h"

namespace lctrain {

DynamicLossScaler::DynamicLossScaler(LossScalerOptions options, bool enabled)
    : options_(options), enabled_(enabled), scale_(options.initial_scale) {
  LCTRAIN_CHECK(options_.initial_scale > 0.0 && options_.growth_factor > 1.0 &&
                    options_.backoff_factor > 0.0 && options_.backoff_factor < 1.0 &&
                    options_.growth_interval > 0,
                "loss scaler: scale {} must be > 0, growth {} > 1, backoff {} in (0, 1), interval "
                "{} > 0",
                options_.initial_scale, options_.growth_factor, options_.backoff_factor,
                options_.growth_interval);
}

bool DynamicLossScaler::unscale_and_check(const std::vector<torch::Tensor>& parameters,
                                          Communicator& communicator) {
  if (!enabled_) return true;
  torch::NoGradGuard no_grad;
  // One flag on the gradients' device, read once: no host sync per tensor.
  torch::Tensor overflow;
  for (const auto& parameter : parameters) {
    const torch::Tensor& gradient = parameter.grad();
    if (!gradient.defined()) continue;
    gradient.mul_(1.0 / scale_);
    const torch::Tensor bad = gradient.isfinite().logical_not().any();
    overflow = overflow.defined() ? overflow.logical_or(bad) : bad;
  }
  const double local = overflow.defined() && overflow.item<bool>() ? 1.0 : 0.0;
  return communicator.sum_over_ranks(local) == 0.0;
}

void DynamicLossScaler::update(bool finite) {
  if (!enabled_) return;
  if (!finite) {
    scale_ *= options_.backoff_factor;
    growth_tracker_ = 0;
    return;
  }
  if (++growth_tracker_ == options_.growth_interval) {
    scale_ *= options_.growth_factor;
    growth_tracker_ = 0;
  }
}

void DynamicLossScaler::load_state(double scale, int64_t growth_tracker) {
  LCTRAIN_CHECK(scale > 0.0 && growth_tracker >= 0, "loss scaler state ({}, {}) is invalid", scale,
                growth_tracker);
  scale_ = scale;
  growth_tracker_ = growth_tracker;
}

}  // namespace lctrain
