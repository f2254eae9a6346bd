#include "optim/gradient_clipping.h"

namespace lctrain {

torch::Tensor clip_gradients(const std::vector<torch::Tensor>& shards, double max_norm,
                             Communicator& communicator) {
  torch::NoGradGuard no_grad;
  const torch::Device device =
      shards.empty() ? torch::Device(torch::kCPU) : shards.front().device();
  // fp64 so that the sum over billions of squares loses nothing before the square root.
  torch::Tensor squares = torch::zeros({1}, torch::TensorOptions(torch::kFloat64).device(device));
  for (const auto& shard : shards) {
    if (shard.grad().defined()) squares.add_(shard.grad().to(torch::kFloat64).pow(2).sum());
  }
  communicator.all_reduce_sum(squares);
  const torch::Tensor norm = squares.sqrt().squeeze(0);
  if (max_norm > 0.0) {
    // A coefficient of exactly 1 below the limit: multiplying by it changes no bit.
    const torch::Tensor coefficient = (max_norm / (norm + 1e-6)).clamp_max(1.0);
    for (const auto& shard : shards) {
      if (shard.grad().defined()) shard.grad().mul_(coefficient.to(shard.grad().scalar_type()));
    }
  }
  return norm;
}

}  // namespace lctrain
