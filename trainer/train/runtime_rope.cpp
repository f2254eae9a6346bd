#include "train/runtime_rope.h"

#include "model/rope_windows.h"
#include "util/error.h"
#include "util/logging.h"

namespace lctrain {
namespace {

RopeScalingType scaling_type(const std::string& name) {
  if (name == "none") return RopeScalingType::kNone;
  if (name == "linear") return RopeScalingType::kLinear;
  if (name == "dynamic") return RopeScalingType::kDynamic;
  if (name == "yarn") return RopeScalingType::kYarn;
  LCTRAIN_CHECK(name == "llama3",
                "context.scaling '{}' is not one of none, linear, dynamic, yarn, llama3", name);
  return RopeScalingType::kLlama3;
}

}  // namespace

LlamaConfig training_model_config(const TrainConfig::Context& context, const LlamaConfig& base) {
  const RopeWindows windows = rope_windows(base);
  const int64_t original = context.original_length > 0 ? context.original_length : windows.original;
  // Shrinking the window would train positions the model never sees at inference as "far".
  LCTRAIN_CHECK(context.target_length >= windows.extended,
                "context.target_length ({}) is shorter than the window the model already runs at "
                "({} tokens, max_position_embeddings {}, RoPE {}); set it to at least {}",
                context.target_length, windows.extended, base.max_position_embeddings,
                base.rope_scaling.describe(), windows.extended);
  LCTRAIN_CHECK(context.target_length >= original,
                "context.target_length ({}) is shorter than context.original_length ({})",
                context.target_length, original);
  const RopeScalingType type = scaling_type(context.scaling);
  if (!base.rope_scaling.is_none() && base.rope_scaling.type != type) {
    log()->warn(
        "the base model was trained with RoPE {}; this run replaces it with {} from its "
        "original window {}",
        base.rope_scaling.describe(), context.scaling, original);
  }
  LlamaConfig extended = with_context("context.scaling", [&] {
    return with_extended_rope(base, type, original, context.target_length);
  });
  extended.validate("training model config");
  return extended;
}

}  // namespace lctrain
