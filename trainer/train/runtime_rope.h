// The RoPE scaling a fine-tuning run uses to stretch a window L to L' (linear = Position
// Interpolation by default), derived from the training config.
#pragma once

#include "model/llama_config.h"
#include "train/train_config.h"

namespace lctrain {

// factor = L' / L, with L = context.original_length or the model's max_position_embeddings.
RopeScaling training_rope_scaling(const TrainConfig::Context& context, const LlamaConfig& model);

}  // namespace lctrain
