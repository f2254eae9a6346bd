// The memory estimate that refuses impossible lengths up front: LLaMA-2 7B's well-known figures
// (0.5 MB of fp16 KV cache per token, 13.5 GB of weights) and the growth with the length.
#include <gtest/gtest.h>

#include "model/memory_estimate.h"
#include "support/error_expectations.h"

namespace lctrain {
namespace {

LlamaConfig llama2_7b() {
  LlamaConfig config;  // the defaults are LLaMA-2 7B's shapes
  config.vocab_size = 32000;
  return config;
}

TEST(MemoryEstimate, MatchesLlama2SevenBillionsKnownFigures) {
  const MemoryEstimate estimate =
      estimate_generation_memory(llama2_7b(), torch::kFloat16, torch::kCPU, 8192, 0);
  // 2 (K and V) x 32 layers x 32 heads x 128 x 2 bytes = 512 KiB per token.
  EXPECT_DOUBLE_EQ(estimate.kv_cache, 8192.0 * 2 * 32 * 32 * 128 * 2);
  EXPECT_NEAR(estimate.weights, 13.5e9, 0.1e9);
  EXPECT_DOUBLE_EQ(estimate.logits, 32000.0 * 4);
  // Blockwise attention (CPU, 8K keys) stays linear in the length: far below 8K x 8K scores.
  EXPECT_LT(estimate.attention, 32.0 * 8192 * 8192 * 4);
  EXPECT_GT(estimate.total(), estimate.weights + estimate.kv_cache);
}

TEST(MemoryEstimate, GrowsWithTheLengthAndTheUncachedPathRecomputesEverything) {
  const LlamaConfig config = llama2_7b();
  const auto at = [&](double tokens, bool cache) {
    return estimate_generation_memory(config, torch::kBFloat16, torch::kCPU, tokens, 16, cache);
  };
  EXPECT_NEAR(at(1e6, true).kv_cache / at(1e4, true).kv_cache, (1e6 + 16) / (1e4 + 16), 1e-9);
  EXPECT_GT(at(1e6, true).total(), at(1e4, true).total());
  EXPECT_EQ(at(1e5, false).kv_cache, 0.0);
  EXPECT_GT(at(1e5, false).activations, at(1e5, true).activations * 0.99);
}

TEST(MemoryEstimate, RefusesWhatExceedsTheMachineNamingTheFigures) {
  const MemoryEstimate huge =
      estimate_generation_memory(llama2_7b(), torch::kBFloat16, torch::kCPU, 1e9, 8);
  const std::string message = testing::error_message_of(
      [&] { check_fits_in_memory(huge, torch::kCPU, "eval passkey at k = 1000000000"); });
  testing::expect_contains(
      message, {"eval passkey at k = 1000000000 would need about", "KV cache", "this machine has"});
  EXPECT_GT(device_memory_bytes(torch::kCPU), 1e8);
  LlamaConfig tiny;
  tiny.vocab_size = 256;
  tiny.hidden_size = 64;
  tiny.intermediate_size = 128;
  tiny.num_hidden_layers = 2;
  tiny.num_attention_heads = 4;
  tiny.num_key_value_heads = 4;
  tiny.head_dim = 16;
  EXPECT_EQ(testing::error_message_of([&] {
              check_fits_in_memory(
                  estimate_generation_memory(tiny, torch::kFloat32, torch::kCPU, 4096, 64),
                  torch::kCPU, "a short prompt");
            }),
            "<no error>");
  EXPECT_EQ(format_bytes(1.5e9), "1.5 GB");
  EXPECT_EQ(format_bytes(999), "999 B");
}

}  // namespace
}  // namespace lctrain
