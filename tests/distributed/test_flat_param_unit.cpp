// FlatParamUnit's parameter views: under autograd their gradients land in one flat gradient of the
// whole unit, exactly as autograd's own narrow-and-view backward would put them, with zeros for
// parameters that got no gradient; without autograd they are plain views.
#include <gtest/gtest.h>

#include "distributed/communicator.h"
#include "distributed/flat_param_unit.h"
#include "util/error.h"

namespace lctrain {
namespace {

FlatParamUnit make_unit() {
  torch::manual_seed(0);
  return FlatParamUnit(
      "layer", {{"a", torch::randn({3, 4})}, {"b", torch::randn({5})}, {"c", torch::randn({2, 3})}},
      Communicator::single_process());
}

// The flat gradient of sum(view_i * weight_i) over the parameters listed in `used`.
torch::Tensor flat_gradient(const std::vector<torch::Tensor>& views, const torch::Tensor& full,
                            const std::vector<size_t>& used) {
  torch::Tensor loss = torch::zeros({}, torch::kFloat64);
  for (size_t index : used) {
    const auto weight =
        torch::arange(views[index].numel(), torch::kFloat32).reshape(views[index].sizes()) +
        static_cast<double>(index);
    loss = loss + (views[index] * weight).sum().to(torch::kFloat64);
  }
  loss.backward();
  return full.grad();
}

TEST(FlatParamUnit, ViewGradientsFillOneFlatGradientLikeAutogradsOwn) {
  FlatParamUnit unit = make_unit();
  const torch::Tensor gathered = unit.gather(torch::kFloat32);
  ASSERT_EQ(gathered.numel(), unit.padded_numel());

  for (const std::vector<size_t>& used : {std::vector<size_t>{0, 1, 2}, {0, 2}, {1}}) {
    const torch::Tensor full = gathered.detach().clone().requires_grad_(true);
    const auto views = unit.views(full);
    ASSERT_EQ(views.size(), 3u);
    EXPECT_EQ(views[0].sizes(), torch::IntArrayRef({3, 4}));
    EXPECT_EQ(views[2].sizes(), torch::IntArrayRef({2, 3}));
    const torch::Tensor got = flat_gradient(views, full, used);

    // Autograd's own backward of narrow(...).view(...), as the reference.
    const torch::Tensor reference_full = gathered.detach().clone().requires_grad_(true);
    std::vector<torch::Tensor> reference_views;
    for (const FlatParamEntry& entry : unit.entries()) {
      reference_views.push_back(
          reference_full.narrow(0, entry.offset, entry.numel).view(entry.shape));
    }
    const torch::Tensor expected = flat_gradient(reference_views, reference_full, used);
    ASSERT_TRUE(got.defined());
    EXPECT_TRUE(torch::equal(got, expected)) << got << "\n" << expected;
  }
}

TEST(FlatParamUnit, ViewsWithoutAutogradShareTheFlatBuffer) {
  FlatParamUnit unit = make_unit();
  const torch::Tensor full = unit.gather(torch::kFloat32);
  const auto views = unit.views(full);
  for (size_t index = 0; index < views.size(); ++index) {
    const FlatParamEntry& entry = unit.entries()[index];
    EXPECT_EQ(views[index].data_ptr<float>(), full.data_ptr<float>() + entry.offset);
    EXPECT_TRUE(
        torch::equal(views[index].reshape({-1}), full.narrow(0, entry.offset, entry.numel)));
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor leaf = full.detach().clone().requires_grad_(true);
  EXPECT_EQ(unit.views(leaf)[1].data_ptr<float>(),
            leaf.data_ptr<float>() + unit.entries()[1].offset);
}

TEST(FlatParamUnit, OneRankGathersItsShardWithoutACopyInTheShardsDtype) {
  FlatParamUnit unit = make_unit();
  const torch::Tensor full = unit.gather(torch::kFloat32);
  EXPECT_EQ(full.data_ptr<float>(), unit.shard().data_ptr<float>());
  EXPECT_FALSE(full.requires_grad());  // a detached alias: autograd does not reach the shard
  // Another dtype is a converted copy, as a collective's result would be.
  const torch::Tensor converted = unit.gather(torch::kBFloat16);
  EXPECT_TRUE(torch::equal(converted, unit.shard().detach().to(torch::kBFloat16)));
  EXPECT_NE(converted.data_ptr(), unit.shard().data_ptr());
}

TEST(FlatParamUnit, ASpanIsOneMatrixOverAdjacentParametersAndItsGradientLandsInPlace) {
  torch::manual_seed(1);
  FlatParamUnit unit("layer",
                     {{"q", torch::randn({4, 3})},
                      {"k", torch::randn({2, 3})},
                      {"v", torch::randn({2, 3})},
                      {"norm", torch::randn({3})}},
                     Communicator::single_process());
  EXPECT_FALSE(unit.add_span("k+v+norm", 1, 3));  // [2, 3] and [3]: not one matrix
  EXPECT_TRUE(unit.spans().empty());
  ASSERT_TRUE(unit.add_span("qkv", 0, 3));
  const torch::Tensor gathered = unit.gather(torch::kFloat32);
  const auto plain = unit.views(gathered);
  ASSERT_EQ(plain.size(), 5u);  // 4 parameters, then the span
  EXPECT_EQ(plain[4].sizes(), torch::IntArrayRef({8, 3}));
  EXPECT_EQ(plain[4].data_ptr<float>(), plain[0].data_ptr<float>());
  EXPECT_TRUE(torch::equal(plain[4], torch::cat({plain[0], plain[1], plain[2]})));

  // Gradients through the span and through a parameter (norm, and k itself: overlapping the
  // span) add up in the flat gradient, as autograd's own views would.
  const torch::Tensor full = gathered.detach().clone().requires_grad_(true);
  const auto views = unit.views(full);
  const torch::Tensor weight = torch::randn({8, 3});
  ((views[4] * weight).sum() + (views[3] * 2).sum() + (views[1] * 3).sum()).backward();
  torch::Tensor expected = torch::zeros({full.numel()});
  expected.narrow(0, 0, 24).copy_(weight.reshape({-1}));
  expected.narrow(0, 12, 6).add_(3);
  expected.narrow(0, 24, 3).fill_(2);
  EXPECT_TRUE(torch::allclose(full.grad(), expected)) << full.grad() << "\n" << expected;
  EXPECT_THROW(unit.add_span("past the end", 3, 2), Error);
}

}  // namespace
}  // namespace lctrain
