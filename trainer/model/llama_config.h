// LlamaConfig: the trained hyper-parameters of a LLaMA 1/2/3 checkpoint, read from (and written
// back to) a Hugging Face config.json. Runtime choices (dtype, RoPE override) live elsewhere.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "model/rope_scaling.h"

namespace lctrain {

struct LlamaConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;  // < num_attention_heads means grouped-query attention
  int64_t head_dim = 128;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 2048;  // the window the checkpoint was trained with
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  RopeScaling rope_scaling;  // what the checkpoint was trained with
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  // Everything else config.json held, kept so an export writes it back unchanged.
  nlohmann::json original_json = nlohmann::json::object();

  // Parses a config.json object; `source` names it in errors. Validates shapes and ranges.
  static LlamaConfig from_json(const nlohmann::json& json, const std::string& source);
  static LlamaConfig from_file(const std::filesystem::path& path);
  // config.json for Hugging Face: the original keys with ours written over them.
  nlohmann::json to_json() const;

  void validate(const std::string& source) const;
  int64_t num_parameters() const;
  int64_t kv_groups() const { return num_attention_heads / num_key_value_heads; }
};

}  // namespace lctrain
