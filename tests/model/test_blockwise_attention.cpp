// Blockwise (online-softmax) causal attention equals the fused/math attention: with and without a
// cached prefix, blocks that do and do not divide the length, GQA-repeated heads; its gradients
// equal autograd's through the masked attention; and a model's forward and backward at 4K+ tokens
// (where the blockwise path is the automatic choice on CPU) equal the math path's.
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

// Restores the process-wide attention path when a test ends.
class AttentionPathChoice {
 public:
  explicit AttentionPathChoice(AttentionPath path) : saved_(attention_path()) {
    set_attention_path(path);
  }
  ~AttentionPathChoice() { set_attention_path(saved_); }

 private:
  AttentionPath saved_;
};

TEST(BlockwiseAttention, GradientsEqualTheMaskedAttentionsForAnyBlockAndPrefix) {
  torch::manual_seed(1);
  for (const int64_t past : {0, 5}) {
    for (const int64_t length : {1, 7, 33}) {
      for (const int64_t block : {1, 8, 512}) {
        SCOPED_TRACE(fmt::format("past {} length {} block {}", past, length, block));
        const auto q = torch::randn({2, 3, length, 16}).requires_grad_(true);
        const auto k = (torch::randn({2, 3, past + length, 16}) * 3).requires_grad_(true);
        const auto v = torch::randn({2, 3, past + length, 16}).requires_grad_(true);
        const auto upstream = torch::randn({2, 3, length, 16});
        const auto expected =
            torch::autograd::grad({reference(q, k, v, past)}, {q, k, v}, {upstream});
        const auto actual = torch::autograd::grad(
            {blockwise_causal_attention(q, k, v, past, block)}, {q, k, v}, {upstream});
        const char* names[] = {"query", "key", "value"};
        for (size_t i = 0; i < 3; ++i) {
          EXPECT_TRUE(torch::allclose(actual[i], expected[i], 1e-5, 1e-5))
              << names[i] << ": " << (actual[i] - expected[i]).abs().max().item<float>();
        }
      }
    }
  }
}

TEST(BlockwiseAttention, Bfloat16GradientsComeBackInBfloat16) {
  const auto q = torch::randn({1, 2, 20, 8}).to(torch::kBFloat16).requires_grad_(true);
  const auto k = torch::randn({1, 2, 20, 8}).to(torch::kBFloat16).requires_grad_(true);
  const auto v = torch::randn({1, 2, 20, 8}).to(torch::kBFloat16).requires_grad_(true);
  const auto output = blockwise_causal_attention(q, k, v, 0, 8);
  EXPECT_EQ(output.scalar_type(), torch::kBFloat16);
  output.sum().backward();
  for (const auto& tensor : {q, k, v}) {
    ASSERT_TRUE(tensor.grad().defined());
    EXPECT_EQ(tensor.grad().scalar_type(), torch::kBFloat16);
  }
  const auto q32 = q.detach().to(torch::kFloat32).requires_grad_(true);
  reference(q32, k.detach().to(torch::kFloat32), v.detach().to(torch::kFloat32), 0)
      .sum()
      .backward();
  EXPECT_TRUE(torch::allclose(q.grad().to(torch::kFloat32), q32.grad(), 2e-2, 2e-2));
}

TEST(BlockwiseAttention, ModelAtLongContextMatchesTheMathPathForwardAndBackward) {
  LlamaModel model =
      io::load_model(testing::fixture_dir("tiny-llama-parity"), io::ModelLoadOptions{});
  const auto ids = torch::randint(0, 257, {1, 4500}, torch::kInt64);
  const auto query = ids.to(torch::kFloat32).view({1, 1, 4500, 1});
  const auto run = [&] {
    torch::Tensor embeddings = model.weights().embed_tokens;
    embeddings.mutable_grad() = torch::Tensor();
    embeddings.requires_grad_(true);
    const auto logits = model.forward(ids);
    logits.index({0, torch::indexing::Slice(-10)}).sum().backward();
    const torch::Tensor gradient = embeddings.grad().clone();
    embeddings.requires_grad_(false);
    return std::pair{logits.detach(), gradient};
  };
  std::pair<torch::Tensor, torch::Tensor> math;
  {
    const AttentionPathChoice choice(AttentionPath::kMath);
    ASSERT_FALSE(use_blockwise_attention(query, 4500));
    math = run();
  }
  ASSERT_TRUE(use_blockwise_attention(query, 4500));  // the automatic choice at 4500 keys on CPU
  const auto blockwise = run();
  EXPECT_TRUE(torch::allclose(blockwise.first, math.first, 1e-4, 1e-4))
      << (blockwise.first - math.first).abs().max().item<float>();
  // Summed over 4500 positions' contributions in different orders: compare as a whole.
  const double relative =
      ((blockwise.second - math.second).norm() / math.second.norm()).item<double>();
  EXPECT_LT(relative, 1e-5);
  EXPECT_GT(math.second.abs().sum().item<double>(), 0);
}

}  // namespace
}  // namespace lctrain
