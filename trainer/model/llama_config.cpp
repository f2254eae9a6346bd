#include "model/llama_config.h"

#include "util/error.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

// eos_token_id may be a list in LLaMA 3 configs; the first entry is the one greedy decoding stops
// at.
int64_t first_token_id(const JsonFields& fields, const std::string& key, int64_t fallback) {
  if (!fields.has(key)) return fallback;
  const nlohmann::json& value = fields.raw(key);
  if (value.is_array()) {
    LCTRAIN_CHECK(!value.empty() && value.front().is_number_integer(),
                  "{}: key '{}' must be an integer or a list of integers", fields.source(), key);
    return value.front().get<int64_t>();
  }
  return fields.required_int(key);
}

}  // namespace

LlamaConfig LlamaConfig::from_json(const nlohmann::json& json, const std::string& source) {
  const JsonFields fields(json, source);
  if (fields.has("model_type")) {
    const std::string model_type = fields.required_string("model_type");
    LCTRAIN_CHECK(model_type == "llama", "{}: model_type '{}' is not supported (expected 'llama')",
                  source, model_type);
  }
  if (fields.has("hidden_act")) {
    const std::string activation = fields.required_string("hidden_act");
    LCTRAIN_CHECK(activation == "silu", "{}: hidden_act '{}' is not supported (LLaMA uses silu)",
                  source, activation);
  }
  LlamaConfig config;
  config.original_json = json;
  config.vocab_size = fields.required_int("vocab_size");
  config.hidden_size = fields.required_int("hidden_size");
  config.intermediate_size = fields.required_int("intermediate_size");
  config.num_hidden_layers = fields.required_int("num_hidden_layers");
  config.num_attention_heads = fields.required_int("num_attention_heads");
  config.num_key_value_heads =
      fields.optional_int("num_key_value_heads").value_or(config.num_attention_heads);
  LCTRAIN_CHECK(config.num_attention_heads > 0, "{}: num_attention_heads must be positive", source);
  config.head_dim =
      fields.optional_int("head_dim").value_or(config.hidden_size / config.num_attention_heads);
  config.rms_norm_eps = fields.optional_number("rms_norm_eps").value_or(1e-6);
  config.rope_theta = fields.optional_number("rope_theta").value_or(10000.0);
  config.max_position_embeddings = fields.optional_int("max_position_embeddings").value_or(2048);
  config.tie_word_embeddings = fields.optional_bool("tie_word_embeddings").value_or(false);
  config.attention_bias = fields.optional_bool("attention_bias").value_or(false);
  config.mlp_bias = fields.optional_bool("mlp_bias").value_or(false);
  config.bos_token_id = first_token_id(fields, "bos_token_id", 1);
  config.eos_token_id = first_token_id(fields, "eos_token_id", 2);
  if (fields.has("rope_scaling")) {
    config.rope_scaling =
        RopeScaling::from_json(fields.raw("rope_scaling"), source + " rope_scaling");
  }
  config.validate(source);
  return config;
}

LlamaConfig LlamaConfig::from_file(const std::filesystem::path& path) {
  return from_json(read_json_file(path), path.string());
}

void LlamaConfig::validate(const std::string& source) const {
  const auto positive = [&](int64_t value, const char* key) {
    LCTRAIN_CHECK(value > 0, "{}: '{}' must be positive, got {}", source, key, value);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(num_key_value_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  positive(max_position_embeddings, "max_position_embeddings");
  // Guard against absurd values that would only fail later inside an allocation.
  constexpr int64_t kLimit = int64_t{1} << 24;
  for (const auto& [value, key] : {std::pair{vocab_size, "vocab_size"},
                                   {hidden_size, "hidden_size"},
                                   {intermediate_size, "intermediate_size"},
                                   {num_hidden_layers, "num_hidden_layers"},
                                   {num_attention_heads, "num_attention_heads"},
                                   {head_dim, "head_dim"}}) {
    LCTRAIN_CHECK(value <= kLimit, "{}: '{}' = {} is implausibly large", source, key, value);
  }
  LCTRAIN_CHECK(num_attention_heads % num_key_value_heads == 0,
                "{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                source, num_attention_heads, num_key_value_heads);
  LCTRAIN_CHECK(head_dim % 2 == 0, "{}: head_dim must be even for RoPE, got {}", source, head_dim);
  LCTRAIN_CHECK(rms_norm_eps > 0.0 && rms_norm_eps < 1.0,
                "{}: rms_norm_eps must be in (0, 1), got {}", source, rms_norm_eps);
  LCTRAIN_CHECK(rope_theta > 1.0 && std::isfinite(rope_theta), "{}: rope_theta must be > 1, got {}",
                source, rope_theta);
}

int64_t LlamaConfig::num_parameters() const {
  const int64_t q_size = num_attention_heads * head_dim;
  const int64_t kv_size = num_key_value_heads * head_dim;
  int64_t attention = hidden_size * (q_size + 2 * kv_size) + q_size * hidden_size;
  if (attention_bias) attention += q_size + 2 * kv_size + hidden_size;
  int64_t mlp = 3 * hidden_size * intermediate_size;
  if (mlp_bias) mlp += 2 * intermediate_size + hidden_size;
  const int64_t layer = attention + mlp + 2 * hidden_size;
  const int64_t embeddings = vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2);
  return num_hidden_layers * layer + embeddings + hidden_size;
}

nlohmann::json LlamaConfig::to_json() const {
  nlohmann::json json = original_json.is_object() ? original_json : nlohmann::json::object();
  json["architectures"] = {"LlamaForCausalLM"};
  json["model_type"] = "llama";
  json["vocab_size"] = vocab_size;
  json["hidden_size"] = hidden_size;
  json["intermediate_size"] = intermediate_size;
  json["num_hidden_layers"] = num_hidden_layers;
  json["num_attention_heads"] = num_attention_heads;
  json["num_key_value_heads"] = num_key_value_heads;
  json["head_dim"] = head_dim;
  json["hidden_act"] = "silu";
  json["rms_norm_eps"] = rms_norm_eps;
  json["rope_theta"] = rope_theta;
  json["max_position_embeddings"] = max_position_embeddings;
  json["tie_word_embeddings"] = tie_word_embeddings;
  json["attention_bias"] = attention_bias;
  json["mlp_bias"] = mlp_bias;
  json["rope_scaling"] = rope_scaling.to_json();
  if (!json.contains("bos_token_id")) json["bos_token_id"] = bos_token_id;
  if (!json.contains("eos_token_id")) json["eos_token_id"] = eos_token_id;
  return json;
}

}  // namespace lctrain
