// The model a fine-tuning run trains: the base model's config with its window stretched from L to
// L' by the configured RoPE scaling (linear = Position Interpolation by default).
#pragma once

#include "model/llama_config.h"
#include "train/train_config.h"

namespace lctrain {

// The base config with max_position_embeddings and rope_scaling set for the run: factor L' / L,
// with L = context.original_length or the window the base was pre-trained at (its own
// rope_scaling's original window, so extending an extended model scales from the start). The
// run computes with exactly this config, and its final model and exports write it.
// Refuses a target shorter than the window the base already runs at.
LlamaConfig training_model_config(const TrainConfig::Context& context, const LlamaConfig& base);

}  // namespace lctrain
