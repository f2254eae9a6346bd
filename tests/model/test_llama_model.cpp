// The LLaMA forward pass: KV-cache decoding equals full recomputation, GQA equals explicit head
// duplication, bf16 tracks f32, and bad token ids are rejected.
#include <gtest/gtest.h>

#include "model/cpu_gemm.h"
#include "model/generate.h"
#include "model/llama_model.h"
#include "util/error.h"

namespace lctrain {
namespace {

LlamaConfig tiny_config(int64_t kv_heads = 2, bool tied = false) {
  return LlamaConfig::from_json({{"vocab_size", 97},
                                 {"hidden_size", 64},
                                 {"intermediate_size", 96},
                                 {"num_hidden_layers", 2},
                                 {"num_attention_heads", 4},
                                 {"num_key_value_heads", kv_heads},
                                 {"max_position_embeddings", 32},
                                 {"rms_norm_eps", 1e-5},
                                 {"tie_word_embeddings", tied}},
                                "test config");
}

LlamaModel tiny_model(RopeScaling rope = RopeScaling::none(), int64_t kv_heads = 2,
                      torch::ScalarType dtype = torch::kFloat32) {
  const LlamaConfig config = tiny_config(kv_heads);
  // A large init makes logits decisive, so argmax comparisons are meaningful.
  return LlamaModel(config, init_llama_weights(config, dtype, /*seed=*/7, /*init_std=*/0.4), rope);
}

torch::Tensor random_ids(int64_t length, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  return torch::randint(97, {1, length}, generator, torch::kInt64);
}

class KVCacheEquivalence : public ::testing::TestWithParam<std::string> {};

TEST_P(KVCacheEquivalence, GreedyTokensMatchFullRecomputation) {
  LlamaModel model = tiny_model(RopeScaling::from_json_text(GetParam(), "test"));
  const auto prompt_tensor = random_ids(7, 1);
  const std::vector<int64_t> prompt(prompt_tensor.data_ptr<int64_t>(),
                                    prompt_tensor.data_ptr<int64_t>() + 7);
  GenerateOptions options;
  options.max_new_tokens = 40;  // runs past max_position_embeddings (32)
  options.use_cache = true;
  const auto cached = greedy_generate(model, prompt, options);
  options.use_cache = false;
  const auto recomputed = greedy_generate(model, prompt, options);
  EXPECT_EQ(cached.size(), 40u);
  EXPECT_EQ(cached, recomputed);
}

// Dynamic NTK is left out on purpose: like Hugging Face, its frequencies change with the
// sequence length, so cached keys beyond the window differ from a recomputation by design.
INSTANTIATE_TEST_SUITE_P(Scalings, KVCacheEquivalence,
                         ::testing::Values("null", R"({"rope_type":"linear","factor":4})",
                                           R"({"rope_type":"yarn","factor":4})"));

TEST(LlamaModel, CachedLogitsEqualFullForwardIncludingChunkedPrefill) {
  LlamaModel model = tiny_model(RopeScaling::linear(2.0));
  torch::NoGradGuard no_grad;
  const auto ids = random_ids(20, 3);
  const auto full = model.forward(ids);
  KVCache cache = model.make_cache(1, 20);
  // Prefill in uneven chunks (exercises the bottom-right causal mask), then single tokens.
  std::vector<torch::Tensor> pieces;
  int64_t start = 0;
  for (const int64_t length : {5, 6, 1, 1, 7}) {
    pieces.push_back(model.forward(ids.narrow(1, start, length), &cache));
    start += length;
  }
  EXPECT_EQ(cache.length(), 20);
  EXPECT_TRUE(torch::allclose(torch::cat(pieces, 1), full, 1e-4, 1e-4));
}

TEST(LlamaModel, CacheOverflowIsAnError) {
  LlamaModel model = tiny_model();
  torch::NoGradGuard no_grad;
  KVCache cache = model.make_cache(1, 4);
  EXPECT_THROW(model.forward(random_ids(5, 1), &cache), Error);
}

TEST(LlamaModel, GroupedQueryAttentionEqualsDuplicatedHeads) {
  // A GQA model with 2 kv heads equals the multi-head model whose k/v heads are repeated.
  const LlamaConfig gqa_config = tiny_config(2);
  const LlamaWeights gqa_weights = init_llama_weights(gqa_config, torch::kFloat32, 11, 0.3);
  const LlamaConfig mha_config = tiny_config(4);
  LlamaWeights mha_weights = gqa_weights;
  for (auto& layer : mha_weights.layers) {
    for (torch::Tensor* projection : {&layer.attention.k_proj, &layer.attention.v_proj}) {
      // rows are [kv_head, head_dim]; each kv head serves two query heads in a row.
      *projection = projection->view({2, 1, 16, 64}).expand({2, 2, 16, 64}).reshape({64, 64});
    }
  }
  LlamaModel gqa(gqa_config, gqa_weights, RopeScaling::none());
  LlamaModel mha(mha_config, mha_weights, RopeScaling::none());
  torch::NoGradGuard no_grad;
  const auto ids = random_ids(12, 5);
  EXPECT_TRUE(torch::allclose(gqa.forward(ids), mha.forward(ids), 1e-5, 1e-5));
}

// Under both CPU GEMM choices (LibTorch's bf16 kernel, and fp32 products of bf16 operands).
TEST(LlamaModel, Bfloat16TracksFloat32) {
  LlamaModel f32 = tiny_model(RopeScaling::linear(2.0), 2, torch::kFloat32);
  const LlamaConfig config = tiny_config(2);
  LlamaModel bf16(config, init_llama_weights(config, torch::kBFloat16, 7, 0.4),
                  RopeScaling::linear(2.0));
  torch::NoGradGuard no_grad;
  const auto ids = random_ids(16, 9);
  const auto reference = f32.forward(ids);
  const CpuGemm saved = cpu_gemm();
  for (const CpuGemm choice : {CpuGemm::kNative, CpuGemm::kFp32}) {
    set_cpu_gemm(choice);
    const auto low = bf16.forward(ids);
    EXPECT_EQ(low.scalar_type(), torch::kBFloat16);
    const auto error = (low.to(torch::kFloat32) - reference).norm() / reference.norm();
    EXPECT_LT(error.item<double>(), 0.05) << "CPU GEMM choice " << static_cast<int>(choice);
  }
  set_cpu_gemm(saved);
}

TEST(LlamaModel, RejectsTokenIdsOutsideTheVocabulary) {
  LlamaModel model = tiny_model();
  torch::NoGradGuard no_grad;
  EXPECT_THROW(model.forward(torch::tensor({{1, 97}}, torch::kInt64)), Error);
  EXPECT_THROW(model.forward(torch::tensor({{-1, 3}}, torch::kInt64)), Error);
  EXPECT_THROW(model.forward(torch::tensor({1, 2}, torch::kInt64)), Error);
}

TEST(LlamaModel, TiedEmbeddingsShareTheTensor) {
  const LlamaConfig config = tiny_config(2, /*tied=*/true);
  LlamaModel model(config, init_llama_weights(config, torch::kFloat32, 1), RopeScaling::none());
  EXPECT_TRUE(model.weights().lm_head.is_same(model.weights().embed_tokens));
  EXPECT_EQ(named_weights(config, model.weights()).back().first, "model.norm.weight");
}

}  // namespace
}  // namespace lctrain
