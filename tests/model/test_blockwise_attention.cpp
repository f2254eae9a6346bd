// Blockwise (online-softmax) causal attention equals the fused/math attention: with and without a
// cached prefix, blocks that do and do not divide the length, GQA-repeated heads; and a model's
// forward pass at 4K+ tokens under no-grad (which takes the blockwise path) equals the math path.
#include <gtest/gtest.h>

#include "io/hf_model_dir.h"
#include "model/blockwise_attention.h"
#include "support/test_support.h"
#include "util/torch_compat.h"

namespace lctrain {
namespace {

torch::Tensor reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        int64_t past) {
  const int64_t length = q.size(2);
  const auto rows = torch::arange(past, past + length, torch::kInt64).unsqueeze(1);
  const auto columns = torch::arange(past + length, torch::kInt64).unsqueeze(0);
  return compat::scaled_dot_product_attention(q, k, v, columns <= rows, false);
}

TEST(BlockwiseAttention, EqualsMaskedAttentionForAnyBlockAndPrefix) {
  torch::manual_seed(0);
  for (const int64_t past : {0, 5, 64}) {
    for (const int64_t length : {1, 7, 33, 100}) {
      for (const int64_t block : {1, 8, 32, 512}) {
        SCOPED_TRACE(fmt::format("past {} length {} block {}", past, length, block));
        const auto q = torch::randn({2, 3, length, 16});
        const auto k = torch::randn({2, 3, past + length, 16}) * 3;  // peaky softmax
        const auto v = torch::randn({2, 3, past + length, 16});
        const auto expected = reference(q, k, v, past);
        const auto actual = blockwise_causal_attention(q, k, v, past, block);
        ASSERT_EQ(actual.sizes(), expected.sizes());
        EXPECT_TRUE(torch::allclose(actual, expected, 1e-5, 1e-5))
            << (actual - expected).abs().max().item<float>();
      }
    }
  }
}

TEST(BlockwiseAttention, ModelForwardAtLongContextMatchesTheMathPath) {
  LlamaModel model =
      io::load_model(testing::fixture_dir("tiny-llama-parity"), io::ModelLoadOptions{});
  const auto ids = torch::randint(0, 257, {1, 4500}, torch::kInt64);
  torch::Tensor with_grad_mode;  // autograd on: the math path
  { with_grad_mode = model.forward(ids).detach(); }
  torch::NoGradGuard no_grad;
  ASSERT_TRUE(use_blockwise_attention(ids.to(torch::kFloat32).view({1, 1, 4500, 1}), 4500));
  const auto blockwise = model.forward(ids);
  EXPECT_TRUE(torch::allclose(blockwise, with_grad_mode, 1e-4, 1e-4))
      << (blockwise - with_grad_mode).abs().max().item<float>();
}

}  // namespace
}  // namespace lctrain
