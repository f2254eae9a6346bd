#include "optim/gradient_clipping.h"

#include <algorithm>

namespace lctrain {

torch::Tensor clip_gradients(const std::vector<torch::Tensor>& shards, double max_norm,
                             Communicator& communicator) {
  torch::NoGradGuard no_grad;
  const torch::Device device =
      shards.empty() ? torch::Device(torch::kCPU) : shards.front().device();
  // fp64 so that the sum over billions of squares loses nothing before the square root.
  torch::Tensor squares = torch::zeros({1}, torch::TensorOptions(torch::kFloat64).device(device));
  // A chunk at a time: an fp64 copy of a whole shard would be twice the shard, at the step's peak.
  constexpr int64_t kChunk = int64_t{1} << 20;
  for (const auto& shard : shards) {
    if (!shard.grad().defined()) continue;
    const torch::Tensor flat = shard.grad().reshape({-1});
    for (int64_t begin = 0; begin < flat.numel(); begin += kChunk) {
      const int64_t length = std::min(kChunk, flat.numel() - begin);
      squares.add_(flat.narrow(0, begin, length).to(torch::kFloat64).pow(2).sum());
    }
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
