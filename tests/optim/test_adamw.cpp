// ShardedAdamW against LibTorch's own AdamW: same updates step after step, and a restored state
// continues exactly where the saved one left off.
#include <gtest/gtest.h>

#include "optim/adamw.h"
#include "util/error.h"
#include "util/torch_compat.h"

namespace lctrain {
namespace {

std::vector<torch::Tensor> make_parameters() {
  torch::manual_seed(7);
  return {torch::randn({37}).requires_grad_(true), torch::randn({5, 3}).requires_grad_(true)};
}

void set_gradients(std::vector<torch::Tensor>& parameters, int step) {
  torch::manual_seed(100 + step);
  for (auto& parameter : parameters) parameter.mutable_grad() = torch::randn_like(parameter);
}

TEST(ShardedAdamW, MatchesLibTorchAdamWStepByStep) {
  const AdamWOptions options{1e-2, 0.9, 0.95, 1e-8, 0.1};
  auto ours = make_parameters();
  auto theirs = make_parameters();
  for (size_t i = 0; i < ours.size(); ++i)
    theirs[i] = theirs[i].detach().clone().requires_grad_(true);
  ShardedAdamW optimizer(ours, options);
  torch::optim::AdamW reference(theirs, torch::optim::AdamWOptions(options.lr)
                                            .betas({options.beta1, options.beta2})
                                            .eps(options.eps)
                                            .weight_decay(options.weight_decay));
  for (int step = 0; step < 6; ++step) {
    const double lr = options.lr * (step + 1) / 6.0;  // a schedule, as the trainer drives it
    for (auto& group : reference.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    set_gradients(ours, step);
    set_gradients(theirs, step);
    optimizer.step(lr);
    reference.step();
    for (size_t i = 0; i < ours.size(); ++i) {
      EXPECT_TRUE(torch::allclose(ours[i], theirs[i], 1e-6, 1e-7))
          << "step " << step << " parameter " << i << " max diff "
          << (ours[i] - theirs[i]).abs().max().item<double>();
    }
  }
  EXPECT_EQ(optimizer.steps(), 6);
  EXPECT_GT(optimizer.exp_avg_sq(0).abs().sum().item<double>(), 0.0);
}

TEST(ShardedAdamW, RestoredStateContinuesBitForBit) {
  const AdamWOptions options{3e-3, 0.9, 0.95, 1e-8, 0.0};
  auto straight = make_parameters();
  ShardedAdamW straight_optimizer(straight, options);
  for (int step = 0; step < 3; ++step) {
    set_gradients(straight, step);
    straight_optimizer.step(options.lr);
  }
  // A second optimizer over copies of the parameters, given the first one's state.
  std::vector<torch::Tensor> resumed, naive, exp_avg, exp_avg_sq;
  for (size_t i = 0; i < straight.size(); ++i) {
    resumed.push_back(straight[i].detach().clone().requires_grad_(true));
    naive.push_back(straight[i].detach().clone().requires_grad_(true));
    exp_avg.push_back(straight_optimizer.exp_avg(i).clone());
    exp_avg_sq.push_back(straight_optimizer.exp_avg_sq(i).clone());
  }
  ShardedAdamW resumed_optimizer(resumed, options);
  resumed_optimizer.load_state(straight_optimizer.steps(), exp_avg, exp_avg_sq);
  // Guard: the same parameters without the optimizer state take another path.
  ShardedAdamW naive_optimizer(naive, options);
  for (int step = 3; step < 6; ++step) {
    for (auto* parameters : {&straight, &resumed, &naive}) set_gradients(*parameters, step);
    straight_optimizer.step(options.lr);
    resumed_optimizer.step(options.lr);
    naive_optimizer.step(options.lr);
  }
  for (size_t i = 0; i < straight.size(); ++i) {
    EXPECT_TRUE(torch::equal(straight[i], resumed[i])) << i;
    EXPECT_FALSE(torch::allclose(straight[i], naive[i])) << i;
  }
}

TEST(ShardedAdamW, RejectsStateOfTheWrongShape) {
  auto parameters = make_parameters();
  ShardedAdamW optimizer(parameters, AdamWOptions{});
  EXPECT_THROW(optimizer.load_state(1, {torch::zeros({3}), torch::zeros({5, 3})},
                                    {torch::zeros({37}), torch::zeros({5, 3})}),
               Error);
  EXPECT_THROW(optimizer.load_state(1, {}, {}), Error);
}

TEST(ShardedAdamW, TheFusedKernelIsFoundWhereLibTorchHasIt) {
  // Found by probing, not by version number: a LibTorch >= 2.4 whose kernel the probe missed
  // (a changed signature) would silently run the unfused update; this says so instead. Likewise
  // grouped-query attention (SDPA's enable_gqa) from 2.5.
  EXPECT_EQ(compat::kFusedAdamW, LCTRAIN_TORCH_AT_LEAST(2, 4));
  EXPECT_EQ(compat::kNativeGroupedQueryAttention, LCTRAIN_TORCH_AT_LEAST(2, 5));
}

TEST(ShardedAdamW, TheFusedKernelUpdatesAsTheUnfusedOne) {
  AdamWOptions options{1e-2, 0.9, 0.95, 1e-8, 0.1};
  options.kernel = AdamWKernel::kUnfused;
  auto unfused_parameters = make_parameters();
  ShardedAdamW unfused(unfused_parameters, options);
  EXPECT_FALSE(unfused.fused());
  options.kernel = AdamWKernel::kFused;
  if (!compat::kFusedAdamW) {
    // This LibTorch has no fused kernel: asking for it is a clear error, and kAuto does not.
    EXPECT_THROW(ShardedAdamW(make_parameters(), options), Error);
    options.kernel = AdamWKernel::kAuto;
    EXPECT_FALSE(ShardedAdamW(make_parameters(), options).fused());
    return;
  }
  auto fused_parameters = make_parameters();
  ShardedAdamW fused(fused_parameters, options);
  ASSERT_TRUE(fused.fused());
  for (int step = 0; step < 6; ++step) {
    const double lr = options.lr * (step + 1) / 6.0;
    set_gradients(unfused_parameters, step);
    set_gradients(fused_parameters, step);
    unfused.step(lr);
    fused.step(lr);
    for (size_t i = 0; i < fused_parameters.size(); ++i) {
      EXPECT_TRUE(torch::allclose(fused_parameters[i], unfused_parameters[i], 1e-6, 1e-7))
          << "step " << step << " parameter " << i;
      EXPECT_TRUE(torch::allclose(fused.exp_avg_sq(i), unfused.exp_avg_sq(i), 1e-6, 1e-12));
    }
  }
}

}  // namespace
}  // namespace lctrain
