// q/k/v and gate/up as one GEMM each (ShardingOptions::fused_projections): the loss and every
// gradient equal the unfused path's, with and without biases, checkpointing and grouped-query
// attention; and training.fused_projections=false selects the unfused path from a recipe.
#include <gtest/gtest.h>

#include "distributed/communicator.h"
#include "distributed/sharded_llama.h"
#include "model/llama_weights.h"

namespace lctrain {
namespace {

LlamaConfig small_config(bool biases, int64_t kv_heads) {
  return LlamaConfig::from_json({{"vocab_size", 48},
                                 {"hidden_size", 32},
                                 {"intermediate_size", 40},
                                 {"num_hidden_layers", 2},
                                 {"num_attention_heads", 4},
                                 {"num_key_value_heads", kv_heads},
                                 {"max_position_embeddings", 16},
                                 {"attention_bias", biases},
                                 {"mlp_bias", biases},
                                 {"tie_word_embeddings", false}},
                                "test config");
}

struct StepResult {
  double loss = 0.0;
  std::vector<torch::Tensor> gradients;  // per unit shard
};

StepResult one_step(const LlamaConfig& config, bool fused, bool checkpointing) {
  ShardingOptions options;
  options.compute_dtype = torch::kFloat32;
  options.activation_checkpointing = checkpointing;
  options.fused_projections = fused;
  LlamaWeights weights = init_llama_weights(config, torch::kFloat32, 5, 0.2);
  // Non-zero biases, so that a bias lost by the fused path shows.
  for (auto& layer : weights.layers) {
    for (torch::Tensor* bias :
         {&layer.attention.q_bias, &layer.attention.k_bias, &layer.attention.v_bias,
          &layer.mlp.gate_bias, &layer.mlp.up_bias}) {
      if (bias->defined()) *bias = torch::randn(bias->sizes()) * 0.5;
    }
  }
  ShardedLlama model(config, weights, config.rope_scaling, Communicator::single_process(), options);
  torch::manual_seed(3);
  const torch::Tensor tokens = torch::randint(0, config.vocab_size, {2, 13}, torch::kInt64);
  const torch::Tensor loss = model.loss(tokens.narrow(1, 0, 12), tokens.narrow(1, 1, 12));
  loss.backward();
  StepResult result{loss.item<double>(), {}};
  for (const torch::Tensor& shard : model.parameters()) result.gradients.push_back(shard.grad());
  return result;
}

TEST(FusedProjections, LossAndGradientsEqualTheUnfusedPath) {
  torch::manual_seed(0);
  for (const bool biases : {false, true}) {
    for (const int64_t kv_heads : {4, 2}) {
      for (const bool checkpointing : {false, true}) {
        const LlamaConfig config = small_config(biases, kv_heads);
        const StepResult fused = one_step(config, true, checkpointing);
        const StepResult separate = one_step(config, false, checkpointing);
        const std::string where = "biases=" + std::to_string(biases) +
                                  " kv_heads=" + std::to_string(kv_heads) +
                                  " checkpointing=" + std::to_string(checkpointing);
        EXPECT_NEAR(fused.loss, separate.loss, 1e-6 * std::abs(separate.loss)) << where;
        ASSERT_EQ(fused.gradients.size(), separate.gradients.size());
        for (size_t unit = 0; unit < fused.gradients.size(); ++unit) {
          ASSERT_TRUE(fused.gradients[unit].defined()) << where << " unit " << unit;
          EXPECT_TRUE(torch::allclose(fused.gradients[unit], separate.gradients[unit], 1e-5, 1e-6))
              << where << " unit " << unit << ": max difference "
              << (fused.gradients[unit] - separate.gradients[unit]).abs().max().item<double>();
          // Every gradient is non-trivial: a projection the fused path skipped would be zero.
          EXPECT_GT(fused.gradients[unit].abs().sum().item<double>(), 0.0);
        }
      }
    }
  }
}

TEST(FusedProjections, TheUnitsDeclareSpansOnlyWhenFused) {
  const LlamaConfig config = small_config(true, 2);
  const LlamaWeights weights = init_llama_weights(config, torch::kFloat32, 5);
  ShardingOptions options;
  options.compute_dtype = torch::kFloat32;
  ShardedLlama fused(config, weights, config.rope_scaling, Communicator::single_process(), options);
  // Each decoder layer: qkv and gate/up weights, and their biases.
  EXPECT_EQ(fused.units()[1]->spans().size(), 4u);
  EXPECT_EQ(fused.units()[1]->spans()[0].shape, (std::vector<int64_t>{32 + 2 * 16, 32}));
  EXPECT_TRUE(fused.units()[0]->spans().empty());  // embeddings
  options.fused_projections = false;
  ShardedLlama separate(config, weights, config.rope_scaling, Communicator::single_process(),
                        options);
  EXPECT_TRUE(separate.units()[1]->spans().empty());
}

}  // namespace
}  // namespace lctrain
