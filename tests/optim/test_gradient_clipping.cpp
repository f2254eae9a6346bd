// clip_gradients: the global norm over shards (a shard without a gradient counts as zero), and
// clipping with torch.nn.utils.clip_grad_norm_'s coefficient, checked against LibTorch's own.
#include <gtest/gtest.h>

#include "optim/gradient_clipping.h"

namespace lctrain {
namespace {

std::vector<torch::Tensor> shards_with_gradients(uint64_t seed, double magnitude) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> shards = {torch::zeros({5}).requires_grad_(true),
                                       torch::zeros({3, 4}).requires_grad_(true),
                                       torch::zeros({2}).requires_grad_(true)};
  shards[0].mutable_grad() = torch::randn({5}) * magnitude;
  shards[1].mutable_grad() = torch::randn({3, 4}) * magnitude;
  // shards[2]: this rank's part of a unit it did not touch has no gradient.
  return shards;
}

std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& shards) {
  std::vector<torch::Tensor> out;
  for (const auto& shard : shards) {
    out.push_back(shard.detach().clone().requires_grad_(true));
    if (shard.grad().defined()) out.back().mutable_grad() = shard.grad().clone();
  }
  return out;
}

double norm_of(const std::vector<torch::Tensor>& shards) {
  double squares = 0.0;
  for (const auto& shard : shards) {
    if (shard.grad().defined())
      squares += shard.grad().to(torch::kFloat64).pow(2).sum().item<double>();
  }
  return std::sqrt(squares);
}

TEST(GradientClipping, LargeGradientsAreScaledToTheLimitAsTorchDoes) {
  auto communicator = Communicator::single_process();
  auto shards = shards_with_gradients(1, 10.0);
  auto expected = copies(shards);
  const double before = norm_of(shards);
  ASSERT_GT(before, 5.0);

  const torch::Tensor norm = clip_gradients(shards, 1.0, *communicator);
  EXPECT_EQ(norm.scalar_type(), torch::kFloat64);
  EXPECT_EQ(norm.dim(), 0);
  EXPECT_NEAR(norm.item<double>(), before, 1e-9 * before);  // the norm before clipping
  EXPECT_NEAR(norm_of(shards), 1.0, 1e-5);

  const std::vector<torch::Tensor> with_grads = {expected[0], expected[1]};
  const double torch_norm = torch::nn::utils::clip_grad_norm_(with_grads, 1.0);
  EXPECT_NEAR(norm.item<double>(), torch_norm, 1e-5 * torch_norm);
  for (size_t index = 0; index < 2; ++index) {
    EXPECT_TRUE(torch::allclose(shards[index].grad(), expected[index].grad(), 1e-6, 1e-7))
        << "shard " << index;
  }
  EXPECT_FALSE(shards[2].grad().defined());
}

TEST(GradientClipping, SmallGradientsAreLeftBitForBit) {
  auto communicator = Communicator::single_process();
  auto shards = shards_with_gradients(2, 0.01);
  const auto untouched = copies(shards);
  const torch::Tensor norm = clip_gradients(shards, 1.0, *communicator);
  EXPECT_NEAR(norm.item<double>(), norm_of(untouched), 1e-12);
  for (size_t index = 0; index < 2; ++index) {
    EXPECT_TRUE(torch::equal(shards[index].grad(), untouched[index].grad())) << "shard " << index;
  }
}

TEST(GradientClipping, ANonPositiveLimitOnlyMeasures) {
  auto communicator = Communicator::single_process();
  for (const double limit : {0.0, -1.0}) {
    auto shards = shards_with_gradients(3, 10.0);
    const auto untouched = copies(shards);
    const torch::Tensor norm = clip_gradients(shards, limit, *communicator);
    EXPECT_NEAR(norm.item<double>(), norm_of(untouched), 1e-9 * norm_of(untouched));
    EXPECT_TRUE(torch::equal(shards[0].grad(), untouched[0].grad()));
  }
}

TEST(GradientClipping, NoGradientsAtAllGiveANormOfZero) {
  auto communicator = Communicator::single_process();
  std::vector<torch::Tensor> shards = {torch::zeros({3}).requires_grad_(true)};
  EXPECT_EQ(clip_gradients(shards, 1.0, *communicator).item<double>(), 0.0);
  EXPECT_EQ(clip_gradients({}, 1.0, *communicator).item<double>(), 0.0);
}

}  // namespace
}  // namespace lctrain
