#include "train/runtime_rope.h"

#include "util/error.h"

namespace lctrain {

RopeScaling training_rope_scaling(const TrainConfig::Context& context, const LlamaConfig& model) {
  const int64_t original =
      context.original_length > 0 ? context.original_length : model.max_position_embeddings;
  const double factor = static_cast<double>(context.target_length) / static_cast<double>(original);
  if (context.scaling == "none") return RopeScaling::none();
  nlohmann::json json = {{"rope_type", context.scaling}, {"factor", factor}};
  if (context.scaling == "llama3") {
    // Meta's LLaMA 3.1 band edges; the original window is the pre-trained one.
    json["low_freq_factor"] = 1.0;
    json["high_freq_factor"] = 4.0;
    json["original_max_position_embeddings"] = original;
  }
  return with_context("context.scaling",
                      [&] { return RopeScaling::from_json(json, "training config"); });
}

}  // namespace lctrain
