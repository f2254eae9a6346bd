// AdamW over the rank's flat fp32 shards, with its state in plain tensors that checkpoints save
// and reshard. Same arithmetic as torch.optim.AdamW (decoupled weight decay, bias correction,
// eps added after the square root), so results match PyTorch's optimizer.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace lctrain {

// How the update runs: kFused is one kernel for all parameters (LibTorch >= 2.4's
// _fused_adamw_, torch.optim.AdamW(fused=True)), kUnfused a few elementwise ops per parameter;
// kAuto fuses on GPUs where LibTorch can. Same arithmetic, rounding aside.
enum class AdamWKernel { kAuto, kFused, kUnfused };

struct AdamWOptions {
  double lr = 2e-5;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  AdamWKernel kernel = AdamWKernel::kAuto;
};

class ShardedAdamW {
 public:
  // `parameters`: leaves whose .grad() the backward pass fills (the FSDP shards).
  ShardedAdamW(std::vector<torch::Tensor> parameters, AdamWOptions options);

  // One update of every parameter with a gradient, at learning rate `lr`.
  void step(double lr);
  void zero_grad();

  // Optimizer steps taken; the moments of parameter i (zeros before the first step).
  int64_t steps() const { return steps_; }
  const torch::Tensor& exp_avg(size_t index) const { return exp_avg_.at(index); }
  const torch::Tensor& exp_avg_sq(size_t index) const { return exp_avg_sq_.at(index); }
  size_t size() const { return parameters_.size(); }
  // Restores the state a checkpoint saved (shapes must match the parameters).
  void load_state(int64_t steps, const std::vector<torch::Tensor>& exp_avg,
                  const std::vector<torch::Tensor>& exp_avg_sq);
  // Bytes of moment tensors this rank holds.
  int64_t state_bytes() const;
  bool fused() const { return fused_; }

 private:
  std::vector<torch::Tensor> parameters_;
  std::vector<torch::Tensor> exp_avg_;
  std::vector<torch::Tensor> exp_avg_sq_;
  AdamWOptions options_;
  int64_t steps_ = 0;
  bool fused_ = false;
};

}  // namespace lctrain
