// The tensors of a LLaMA model, held as plain tensors (not nn::Module parameters) so that the same
// forward code runs on loaded weights, random weights, or FSDP-gathered views. The explicit
// Hugging Face name map lives here too.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/llama_config.h"

namespace lctrain {

struct AttentionWeights {
  torch::Tensor q_proj, k_proj, v_proj, o_proj;  // [out, in], as nn.Linear stores them
  torch::Tensor q_bias, k_bias, v_bias, o_bias;  // undefined unless attention_bias
  // q_proj, k_proj and v_proj stacked ([q + 2 kv, in]; and their biases) when the three lie
  // one after another in memory: the projections then take one GEMM. Undefined otherwise.
  torch::Tensor qkv_proj, qkv_bias;
};

struct MlpWeights {
  torch::Tensor gate_proj, up_proj, down_proj;
  torch::Tensor gate_bias, up_bias, down_bias;  // undefined unless mlp_bias
  torch::Tensor gate_up_proj, gate_up_bias;     // gate and up stacked, as qkv_proj
};

struct DecoderLayerWeights {
  torch::Tensor input_norm;
  AttentionWeights attention;
  torch::Tensor post_attention_norm;
  MlpWeights mlp;
};

struct LlamaWeights {
  torch::Tensor embed_tokens;  // [vocab, hidden]
  std::vector<DecoderLayerWeights> layers;
  torch::Tensor final_norm;
  torch::Tensor lm_head;  // [vocab, hidden]; the same tensor as embed_tokens when tied
};

// One tensor slot of the model under its Hugging Face name, with the shape config.json implies.
struct WeightSlot {
  std::string name;
  std::vector<int64_t> shape;
  torch::Tensor* tensor;
};

// Every tensor a Hugging Face LlamaForCausalLM checkpoint holds for `config`, in a stable order
// (embeddings, layers, norm, lm_head). lm_head is left out when embeddings are tied.
std::vector<WeightSlot> weight_slots(const LlamaConfig& config, LlamaWeights& weights);
std::vector<std::pair<std::string, torch::Tensor>> named_weights(const LlamaConfig& config,
                                                                 const LlamaWeights& weights);

// LLaMA's initialisation (normal, std 0.02; norms 1; biases 0), for pretraining tiny models and
// benchmarks. Deterministic for a given seed.
// One tensor of that initialisation (fp32), drawn from `generator`: init_llama_weights draws the
// slots in weight_slots() order from one generator seeded with its seed.
torch::Tensor init_llama_tensor(const std::string& name, const std::vector<int64_t>& shape,
                                double init_std, torch::Generator& generator);
LlamaWeights init_llama_weights(const LlamaConfig& config, torch::ScalarType dtype, uint64_t seed,
                                double init_std = 0.02);

}  // namespace lctrain
