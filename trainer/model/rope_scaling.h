// RopeScaling: how RoPE positions are rescaled, as a value with Hugging Face's rope_scaling
// semantics. It travels from config.json / YAML / CLI into the model and back out into exports.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace lctrain {

enum class RopeScalingType {
  kNone,     // plain RoPE ("default")
  kLinear,   // Position Interpolation: positions x L/L' (inv_freq / factor)
  kDynamic,  // dynamic NTK: the base grows once the sequence exceeds max_position_embeddings
  kYarn,     // per-frequency blend of interpolation and extrapolation, plus attention factor
  kLlama3,   // LLaMA 3.1: low/high frequency bands around original_max_position_embeddings
};

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  // llama3 (required) and yarn (optional): the window the model was pre-trained with.
  std::optional<int64_t> original_max_position_embeddings;
  double low_freq_factor = 1.0;            // llama3
  double high_freq_factor = 4.0;           // llama3
  double beta_fast = 32.0;                 // yarn
  double beta_slow = 1.0;                  // yarn
  std::optional<double> attention_factor;  // yarn: overrides 0.1 ln(factor) + 1
  std::optional<double> mscale;            // yarn (DeepSeek style)
  std::optional<double> mscale_all_dim;    // yarn (DeepSeek style)
  bool truncate = true;                    // yarn

  static RopeScaling none() { return {}; }
  static RopeScaling linear(double factor);
  static RopeScaling dynamic(double factor);

  // Parses Hugging Face's rope_scaling: null, or {"rope_type"|"type": ..., "factor": ...}.
  // `source` names where the JSON came from, for errors.
  static RopeScaling from_json(const nlohmann::json& json, const std::string& source);
  // Parses the JSON text given on the command line (--rope-scaling).
  static RopeScaling from_json_text(const std::string& text, const std::string& source);
  // Hugging Face JSON (null for none), with both "rope_type" and the older "type" key.
  nlohmann::json to_json() const;
  // One line for logs: "linear (factor 4)".
  std::string describe() const;
  bool is_none() const { return type == RopeScalingType::kNone; }
};

std::string rope_scaling_type_name(RopeScalingType type);

}  // namespace lctrain
