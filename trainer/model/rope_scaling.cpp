#include "model/rope_scaling.h"

#include <fmt/format.h>

#include <cmath>

#include "util/error.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

RopeScalingType parse_type(const std::string& name, const std::string& source) {
  if (name == "default") return RopeScalingType::kNone;
  if (name == "linear") return RopeScalingType::kLinear;
  if (name == "dynamic") return RopeScalingType::kDynamic;
  if (name == "yarn") return RopeScalingType::kYarn;
  if (name == "llama3") return RopeScalingType::kLlama3;
  throw Error("{}: unsupported rope type '{}' (supported: default, linear, dynamic, yarn, llama3)",
              source, name);
}

void check_positive(double value, const std::string& key, const std::string& source) {
  LCTRAIN_CHECK(std::isfinite(value) && value > 0.0, "{}: '{}' must be a positive number, got {}",
                source, key, value);
}

}  // namespace

std::string rope_scaling_type_name(RopeScalingType type) {
  switch (type) {
    case RopeScalingType::kNone:
      return "default";
    case RopeScalingType::kLinear:
      return "linear";
    case RopeScalingType::kDynamic:
      return "dynamic";
    case RopeScalingType::kYarn:
      return "yarn";
    case RopeScalingType::kLlama3:
      return "llama3";
  }
  return "unknown";
}

RopeScaling RopeScaling::linear(double factor) {
  RopeScaling scaling;
  scaling.type = RopeScalingType::kLinear;
  scaling.factor = factor;
  return scaling;
}

RopeScaling RopeScaling::dynamic(double factor) {
  RopeScaling scaling;
  scaling.type = RopeScalingType::kDynamic;
  scaling.factor = factor;
  return scaling;
}

RopeScaling RopeScaling::from_json(const nlohmann::json& json, const std::string& source) {
  if (json.is_null()) return none();
  const JsonFields fields(json, source);
  // Newer transformers write "rope_type"; older files say "type". Either is accepted.
  std::string type_name;
  if (fields.has("rope_type")) {
    type_name = fields.required_string("rope_type");
  } else if (fields.has("type")) {
    type_name = fields.required_string("type");
  } else {
    throw Error("{}: rope_scaling needs a 'rope_type' (or 'type') key", source);
  }

  RopeScaling scaling;
  scaling.type = parse_type(type_name, source);
  if (scaling.type == RopeScalingType::kNone) return scaling;

  scaling.factor = fields.required_number("factor");
  check_positive(scaling.factor, "factor", source);
  LCTRAIN_CHECK(scaling.type == RopeScalingType::kLinear || scaling.factor >= 1.0,
                "{}: '{}' scaling needs factor >= 1, got {}", source, type_name, scaling.factor);
  scaling.original_max_position_embeddings =
      fields.optional_int("original_max_position_embeddings");
  if (scaling.original_max_position_embeddings) {
    LCTRAIN_CHECK(*scaling.original_max_position_embeddings > 0,
                  "{}: 'original_max_position_embeddings' must be positive", source);
  }

  if (scaling.type == RopeScalingType::kLlama3) {
    scaling.low_freq_factor = fields.required_number("low_freq_factor");
    scaling.high_freq_factor = fields.required_number("high_freq_factor");
    check_positive(scaling.low_freq_factor, "low_freq_factor", source);
    check_positive(scaling.high_freq_factor, "high_freq_factor", source);
    LCTRAIN_CHECK(scaling.high_freq_factor > scaling.low_freq_factor,
                  "{}: llama3 needs high_freq_factor > low_freq_factor", source);
    LCTRAIN_CHECK(scaling.original_max_position_embeddings.has_value(),
                  "{}: llama3 scaling needs 'original_max_position_embeddings'", source);
  }
  if (scaling.type == RopeScalingType::kYarn) {
    // Hugging Face treats a missing or zero beta as its default (`get(...) or 32`).
    const double beta_fast = fields.optional_number("beta_fast").value_or(0.0);
    const double beta_slow = fields.optional_number("beta_slow").value_or(0.0);
    scaling.beta_fast = beta_fast != 0.0 ? beta_fast : 32.0;
    scaling.beta_slow = beta_slow != 0.0 ? beta_slow : 1.0;
    check_positive(scaling.beta_fast, "beta_fast", source);
    check_positive(scaling.beta_slow, "beta_slow", source);
    // beta_fast counts the rotations above which a dimension extrapolates, beta_slow those below
    // which it interpolates: the other order turns the ramp inside out (NaN or swapped bands).
    LCTRAIN_CHECK(scaling.beta_fast > scaling.beta_slow,
                  "{}: yarn needs 'beta_fast' > 'beta_slow', got beta_fast {} and beta_slow {}",
                  source, scaling.beta_fast, scaling.beta_slow);
    scaling.attention_factor = fields.optional_number("attention_factor");
    scaling.mscale = fields.optional_number("mscale");
    scaling.mscale_all_dim = fields.optional_number("mscale_all_dim");
    scaling.truncate = fields.optional_bool("truncate").value_or(true);
    if (scaling.attention_factor)
      check_positive(*scaling.attention_factor, "attention_factor", source);
    // transformers reads a zero mscale as "not given"; anything else must be a positive number.
    if (scaling.mscale && *scaling.mscale != 0.0) check_positive(*scaling.mscale, "mscale", source);
    if (scaling.mscale_all_dim && *scaling.mscale_all_dim != 0.0)
      check_positive(*scaling.mscale_all_dim, "mscale_all_dim", source);
  }
  return scaling;
}

RopeScaling RopeScaling::from_json_text(const std::string& text, const std::string& source) {
  return from_json(parse_json(text, source), source);
}

nlohmann::json RopeScaling::to_json() const {
  if (is_none()) return nullptr;
  const std::string name = rope_scaling_type_name(type);
  nlohmann::json json = {{"rope_type", name}, {"type", name}, {"factor", factor}};
  if (original_max_position_embeddings) {
    json["original_max_position_embeddings"] = *original_max_position_embeddings;
  }
  if (type == RopeScalingType::kLlama3) {
    json["low_freq_factor"] = low_freq_factor;
    json["high_freq_factor"] = high_freq_factor;
  }
  if (type == RopeScalingType::kYarn) {
    json["beta_fast"] = beta_fast;
    json["beta_slow"] = beta_slow;
    if (attention_factor) json["attention_factor"] = *attention_factor;
    if (mscale) json["mscale"] = *mscale;
    if (mscale_all_dim) json["mscale_all_dim"] = *mscale_all_dim;
    if (!truncate) json["truncate"] = false;
  }
  return json;
}

std::string RopeScaling::describe() const {
  if (is_none()) return "none";
  std::string text = fmt::format("{} (factor {}", rope_scaling_type_name(type), factor);
  if (original_max_position_embeddings) {
    text += fmt::format(", original window {}", *original_max_position_embeddings);
  }
  return text + ")";
}

}  // namespace lctrain
