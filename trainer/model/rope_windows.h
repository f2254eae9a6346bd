// The two windows a model's config.json implies under Hugging Face's rope_scaling semantics (the
// window RoPE was pre-trained at, and the one the model is meant to run at), and the config that
// makes Hugging Face reproduce a RoPE stretched from one to the other.
#pragma once

#include <cstdint>

#include "model/llama_config.h"

namespace lctrain {

struct RopeWindows {
  int64_t original = 0;  // L: the window RoPE was pre-trained at
  int64_t extended = 0;  // L': the window the model is meant to run at (L without scaling)
};

// Reads both windows from max_position_embeddings and rope_scaling, the way each scaling type
// means them (dynamic NTK: max_position_embeddings is L; yarn without an explicit original window:
// max_position_embeddings is L and the factor stretches it; linear, llama3 and yarn with one:
// max_position_embeddings is L').
RopeWindows rope_windows(const LlamaConfig& config);

// `base` with max_position_embeddings and rope_scaling set so that Hugging Face's semantics (and
// lctrain's, which follow them) give RoPE of `type` stretched from `original` to `target` tokens,
// factor target / original. The training model is built from this config and exports write it,
// so what a run trains is what its exported config.json says.
LlamaConfig with_extended_rope(const LlamaConfig& base, RopeScalingType type, int64_t original,
                               int64_t target);

}  // namespace lctrain
