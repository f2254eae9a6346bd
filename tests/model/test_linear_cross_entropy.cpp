// The chunked head + loss equals cross_entropy(linear(hidden, weight).float(), targets): the loss
// and both gradients, in fp32 for chunks that do and do not divide the tokens, with ignored
// targets; in bf16 within bf16 rounding; and bad shapes are named.
#include <gtest/gtest.h>

#include "model/linear_cross_entropy.h"
#include "util/error.h"

namespace lctrain {
namespace {

struct Case {
  torch::Tensor hidden, weight, targets;
};

Case make_case(torch::ScalarType dtype, int64_t tokens, bool with_ignored) {
  torch::manual_seed(11);
  Case c;
  c.hidden = (torch::randn({tokens, 16}) * 2).to(dtype).requires_grad_(true);
  c.weight = torch::randn({37, 16}).to(dtype).requires_grad_(true);
  c.targets = torch::randint(37, {tokens}, torch::kInt64);
  if (with_ignored) c.targets.index_put_({torch::arange(0, tokens, 3)}, kIgnoreIndex);
  return c;
}

torch::Tensor reference_loss(const Case& c) {
  const auto logits = at::linear(c.hidden, c.weight).to(torch::kFloat32);
  return torch::nn::functional::cross_entropy(logits, c.targets);
}

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double tolerance,
                  const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what;
  EXPECT_EQ(actual.scalar_type(), expected.scalar_type()) << what;
  const auto a = actual.to(torch::kFloat32);
  const auto e = expected.to(torch::kFloat32);
  EXPECT_TRUE(torch::allclose(a, e, tolerance, tolerance))
      << what << ": max difference " << (a - e).abs().max().item<double>();
}

TEST(LinearCrossEntropy, EqualsCrossEntropyOfTheFullLogitsForAnyChunking) {
  for (const bool with_ignored : {false, true}) {
    for (const int64_t chunk : {1, 4, 7, 20, 64, 0}) {
      SCOPED_TRACE(fmt::format("chunk {} ignored {}", chunk, with_ignored));
      const Case ours = make_case(torch::kFloat32, 20, with_ignored);
      const Case reference = make_case(torch::kFloat32, 20, with_ignored);
      const auto loss = linear_cross_entropy(ours.hidden, ours.weight, ours.targets, chunk);
      const auto expected = reference_loss(reference);
      expect_close(loss, expected, 1e-6, "loss");
      (loss * 3).backward();  // a non-unit upstream gradient
      (expected * 3).backward();
      expect_close(ours.hidden.grad(), reference.hidden.grad(), 1e-6, "hidden gradient");
      expect_close(ours.weight.grad(), reference.weight.grad(), 1e-6, "weight gradient");
    }
  }
}

TEST(LinearCrossEntropy, Bfloat16TracksTheUnchunkedComputation) {
  const Case ours = make_case(torch::kBFloat16, 50, false);
  const Case reference = make_case(torch::kBFloat16, 50, false);
  const auto loss = linear_cross_entropy(ours.hidden, ours.weight, ours.targets, 8);
  const auto expected = reference_loss(reference);
  expect_close(loss, expected, 1e-4, "loss");
  loss.backward();
  expected.backward();
  // Per-chunk products of the weight gradient are rounded to bf16 before they are summed.
  expect_close(ours.hidden.grad(), reference.hidden.grad(), 1e-2, "hidden gradient");
  expect_close(ours.weight.grad(), reference.weight.grad(), 2e-2, "weight gradient");
}

TEST(LinearCrossEntropy, OnlyTheHiddenStatesNeedAGradient) {
  Case c = make_case(torch::kFloat32, 9, false);
  c.weight = c.weight.detach();
  linear_cross_entropy(c.hidden, c.weight, c.targets, 4).backward();
  EXPECT_TRUE(c.hidden.grad().defined());
  EXPECT_FALSE(c.weight.grad().defined());
}

TEST(LinearCrossEntropy, NamesBadShapes) {
  const Case c = make_case(torch::kFloat32, 6, false);
  EXPECT_THROW(linear_cross_entropy(c.hidden, c.weight.t(), c.targets), Error);
  EXPECT_THROW(linear_cross_entropy(c.hidden, c.weight, c.targets.narrow(0, 0, 5)), Error);
  try {
    linear_cross_entropy(c.hidden.unsqueeze(0), c.weight, c.targets);
    FAIL() << "a 3-d hidden was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("[1, 6, 16]"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace lctrain
