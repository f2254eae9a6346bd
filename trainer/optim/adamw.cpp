#include "optim/adamw.h"

#include <torch/version.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"
#include "util/torch_compat.h"

namespace lctrain {

ShardedAdamW::ShardedAdamW(std::vector<torch::Tensor> parameters, AdamWOptions options)
    : parameters_(std::move(parameters)), options_(options) {
  for (const auto& parameter : parameters_) {
    exp_avg_.push_back(torch::zeros_like(parameter, torch::MemoryFormat::Contiguous));
    exp_avg_sq_.push_back(torch::zeros_like(parameter, torch::MemoryFormat::Contiguous));
  }
  const bool on_gpus = !parameters_.empty() && std::all_of(parameters_.begin(), parameters_.end(),
                                                           [](const torch::Tensor& parameter) {
                                                             return parameter.is_cuda();
                                                           });
  LCTRAIN_CHECK(options_.kernel != AdamWKernel::kFused || compat::kFusedAdamW,
                "the fused AdamW kernel needs LibTorch 2.4 or later (this is {})", TORCH_VERSION);
  fused_ = options_.kernel == AdamWKernel::kFused ||
           (options_.kernel == AdamWKernel::kAuto && compat::kFusedAdamW && on_gpus);
}

void ShardedAdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double step = static_cast<double>(steps_);
  if (fused_) {
    // One launch for every shard with a gradient; the step count as the kernel wants it.
    std::vector<torch::Tensor> parameters, gradients, exp_avg, exp_avg_sq, steps;
    for (size_t index = 0; index < parameters_.size(); ++index) {
      if (!parameters_[index].grad().defined()) continue;
      parameters.push_back(parameters_[index]);
      gradients.push_back(parameters_[index].grad());
      exp_avg.push_back(exp_avg_[index]);
      exp_avg_sq.push_back(exp_avg_sq_[index]);
      steps.push_back(torch::full({}, step, parameters_[index].options().dtype(torch::kFloat32)));
    }
    if (parameters.empty()) return;
    compat::fused_adamw_step(parameters, gradients, exp_avg, exp_avg_sq, steps, lr, options_.beta1,
                             options_.beta2, options_.weight_decay, options_.eps);
    return;
  }
  const double bias_correction1 = 1.0 - std::pow(options_.beta1, step);
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(options_.beta2, step));
  for (size_t index = 0; index < parameters_.size(); ++index) {
    torch::Tensor& parameter = parameters_[index];
    const torch::Tensor& gradient = parameter.grad();
    if (!gradient.defined()) continue;
    if (options_.weight_decay != 0.0) parameter.mul_(1.0 - lr * options_.weight_decay);
    exp_avg_[index].mul_(options_.beta1).add_(gradient, 1.0 - options_.beta1);
    exp_avg_sq_[index].mul_(options_.beta2).addcmul_(gradient, gradient, 1.0 - options_.beta2);
    // One temporary the size of the shard, not two (sqrt, then the division in place).
    torch::Tensor denominator = exp_avg_sq_[index].sqrt();
    denominator.div_(bias_correction2_sqrt).add_(options_.eps);
    parameter.addcdiv_(exp_avg_[index], denominator, -lr / bias_correction1);
  }
}

void ShardedAdamW::zero_grad() {
  for (auto& parameter : parameters_) {
    if (parameter.grad().defined()) parameter.mutable_grad() = torch::Tensor();
  }
}

void ShardedAdamW::load_state(int64_t steps, const std::vector<torch::Tensor>& exp_avg,
                              const std::vector<torch::Tensor>& exp_avg_sq) {
  LCTRAIN_CHECK(exp_avg.size() == parameters_.size() && exp_avg_sq.size() == parameters_.size(),
                "optimizer state holds {} tensors for {} parameters", exp_avg.size(),
                parameters_.size());
  LCTRAIN_CHECK(steps >= 0, "optimizer step count {} is negative", steps);
  torch::NoGradGuard no_grad;
  for (size_t index = 0; index < parameters_.size(); ++index) {
    LCTRAIN_CHECK(exp_avg[index].sizes() == parameters_[index].sizes() &&
                      exp_avg_sq[index].sizes() == parameters_[index].sizes(),
                  "optimizer state {} has the wrong shape", index);
    exp_avg_[index].copy_(exp_avg[index]);
    exp_avg_sq_[index].copy_(exp_avg_sq[index]);
  }
  steps_ = steps;
}

int64_t ShardedAdamW::state_bytes() const {
  int64_t bytes = 0;
  for (size_t index = 0; index < exp_avg_.size(); ++index) {
    bytes += exp_avg_[index].nbytes() + exp_avg_sq_[index].nbytes();
  }
  return bytes;
}

}  // namespace lctrain
