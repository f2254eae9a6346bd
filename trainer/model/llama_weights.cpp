#include "model/llama_weights.h"

#include <fmt/format.h>

namespace lctrain {

std::vector<WeightSlot> weight_slots(const LlamaConfig& config, LlamaWeights& weights) {
  const int64_t hidden = config.hidden_size;
  const int64_t q_size = config.num_attention_heads * config.head_dim;
  const int64_t kv_size = config.num_key_value_heads * config.head_dim;
  const int64_t intermediate = config.intermediate_size;
  weights.layers.resize(static_cast<size_t>(config.num_hidden_layers));

  std::vector<WeightSlot> slots;
  slots.push_back(
      {"model.embed_tokens.weight", {config.vocab_size, hidden}, &weights.embed_tokens});
  for (int64_t index = 0; index < config.num_hidden_layers; ++index) {
    DecoderLayerWeights& layer = weights.layers[static_cast<size_t>(index)];
    const std::string prefix = fmt::format("model.layers.{}.", index);
    const auto add = [&](const std::string& name, std::vector<int64_t> shape, torch::Tensor* slot) {
      slots.push_back({prefix + name, std::move(shape), slot});
    };
    add("input_layernorm.weight", {hidden}, &layer.input_norm);
    add("self_attn.q_proj.weight", {q_size, hidden}, &layer.attention.q_proj);
    add("self_attn.k_proj.weight", {kv_size, hidden}, &layer.attention.k_proj);
    add("self_attn.v_proj.weight", {kv_size, hidden}, &layer.attention.v_proj);
    add("self_attn.o_proj.weight", {hidden, q_size}, &layer.attention.o_proj);
    if (config.attention_bias) {
      add("self_attn.q_proj.bias", {q_size}, &layer.attention.q_bias);
      add("self_attn.k_proj.bias", {kv_size}, &layer.attention.k_bias);
      add("self_attn.v_proj.bias", {kv_size}, &layer.attention.v_bias);
      add("self_attn.o_proj.bias", {hidden}, &layer.attention.o_bias);
    }
    add("post_attention_layernorm.weight", {hidden}, &layer.post_attention_norm);
    add("mlp.gate_proj.weight", {intermediate, hidden}, &layer.mlp.gate_proj);
    add("mlp.up_proj.weight", {intermediate, hidden}, &layer.mlp.up_proj);
    add("mlp.down_proj.weight", {hidden, intermediate}, &layer.mlp.down_proj);
    if (config.mlp_bias) {
      add("mlp.gate_proj.bias", {intermediate}, &layer.mlp.gate_bias);
      add("mlp.up_proj.bias", {intermediate}, &layer.mlp.up_bias);
      add("mlp.down_proj.bias", {hidden}, &layer.mlp.down_bias);
    }
  }
  slots.push_back({"model.norm.weight", {hidden}, &weights.final_norm});
  if (!config.tie_word_embeddings) {
    slots.push_back({"lm_head.weight", {config.vocab_size, hidden}, &weights.lm_head});
  }
  return slots;
}

std::vector<std::pair<std::string, torch::Tensor>> named_weights(const LlamaConfig& config,
                                                                 const LlamaWeights& weights) {
  LlamaWeights view = weights;  // shallow: tensors share storage
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const WeightSlot& slot : weight_slots(config, view))
    named.emplace_back(slot.name, *slot.tensor);
  return named;
}

torch::Tensor init_llama_tensor(const std::string& name, const std::vector<int64_t>& shape,
                                double init_std, torch::Generator& generator) {
  const bool is_norm = name.find("norm") != std::string::npos;
  const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
  if (is_norm) return torch::ones(shape, torch::kFloat32);
  if (is_bias) return torch::zeros(shape, torch::kFloat32);
  return at::normal(0.0, init_std, shape, generator);
}

LlamaWeights init_llama_weights(const LlamaConfig& config, torch::ScalarType dtype, uint64_t seed,
                                double init_std) {
  torch::Generator generator = at::detail::createCPUGenerator(seed);
  LlamaWeights weights;
  for (WeightSlot& slot : weight_slots(config, weights)) {
    *slot.tensor = init_llama_tensor(slot.name, slot.shape, init_std, generator).to(dtype);
  }
  if (config.tie_word_embeddings) weights.lm_head = weights.embed_tokens;
  return weights;
}

}  // namespace lctrain
