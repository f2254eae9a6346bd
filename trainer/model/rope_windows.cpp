#include "model/rope_windows.h"

#include <cmath>

#include "util/error.h"

namespace lctrain {
namespace {

int64_t rounded(double tokens) { return static_cast<int64_t>(std::llround(tokens)); }

}  // namespace

RopeWindows rope_windows(const LlamaConfig& config) {
  const RopeScaling& rope = config.rope_scaling;
  const int64_t max_positions = config.max_position_embeddings;
  switch (rope.type) {
    case RopeScalingType::kNone:
      return {max_positions, max_positions};
    case RopeScalingType::kLinear:
      return {rope.original_max_position_embeddings.value_or(
                  rounded(static_cast<double>(max_positions) / rope.factor)),
              max_positions};
    case RopeScalingType::kDynamic:
      // Hugging Face grows the base from max_position_embeddings whatever else rope_scaling says.
      return {max_positions, rounded(static_cast<double>(max_positions) * rope.factor)};
    case RopeScalingType::kYarn:
      if (rope.original_max_position_embeddings) {
        return {*rope.original_max_position_embeddings, max_positions};
      }
      return {max_positions, rounded(static_cast<double>(max_positions) * rope.factor)};
    case RopeScalingType::kLlama3:
      return {rope.original_max_position_embeddings.value_or(max_positions), max_positions};
  }
  throw Error("unknown RoPE scaling type");
}

LlamaConfig with_extended_rope(const LlamaConfig& base, RopeScalingType type, int64_t original,
                               int64_t target) {
  LCTRAIN_CHECK(original > 0 && target > 0, "RoPE windows must be positive, got {} -> {}", original,
                target);
  LlamaConfig extended = base;
  extended.max_position_embeddings = target;
  if (type == RopeScalingType::kNone) {
    extended.rope_scaling = RopeScaling::none();
    return extended;
  }
  RopeScaling rope;
  rope.type = type;
  rope.factor = static_cast<double>(target) / static_cast<double>(original);
  // transformers, vLLM and llama.cpp read L from here for yarn and llama3; for dynamic it
  // records L (transformers accepts the key there). Linear keeps Hugging Face's two keys: its
  // validator warns about any other.
  if (type != RopeScalingType::kLinear) rope.original_max_position_embeddings = original;
  if (type == RopeScalingType::kLlama3) {
    // Meta's LLaMA 3.1 band edges.
    rope.low_freq_factor = 1.0;
    rope.high_freq_factor = 4.0;
  }
  if (type == RopeScalingType::kDynamic) {
    // Dynamic NTK grows its base from max_position_embeddings once a sequence is longer: that
    // key must stay L, or the trained frequencies are reached only past L' * factor.
    extended.max_position_embeddings = original;
  }
  extended.rope_scaling = rope;
  return extended;
}

}  // namespace lctrain
