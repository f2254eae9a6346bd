// Rotary position embedding with every Hugging Face scaling (default, linear = Position
// Interpolation, dynamic NTK, yarn, llama3). Tables are computed in fp32 and cached per length.
#pragma once

#include <torch/torch.h>

#include <utility>

#include "model/rope_scaling.h"

namespace lctrain {

struct RopeFrequencies {
  torch::Tensor inverse_frequencies;  // fp32 [head_dim / 2]
  double attention_factor = 1.0;      // multiplies cos and sin (yarn)
};

// The inverse frequencies Hugging Face computes for a sequence of `sequence_length` tokens
// (only dynamic NTK depends on the length).
RopeFrequencies compute_rope_frequencies(const RopeScaling& scaling, int64_t head_dim, double theta,
                                         int64_t max_position_embeddings, int64_t sequence_length);

class RotaryEmbedding {
 public:
  RotaryEmbedding(RopeScaling scaling, int64_t head_dim, double theta,
                  int64_t max_position_embeddings);

  // cos and sin for positions [start, start + length): fp32 [length, head_dim] on `device`.
  std::pair<torch::Tensor, torch::Tensor> cos_sin(int64_t start, int64_t length,
                                                  const torch::Device& device);
  const RopeScaling& scaling() const { return scaling_; }

 private:
  void rebuild(int64_t frequency_key, int64_t table_length, const torch::Device& device);

  RopeScaling scaling_;
  int64_t head_dim_;
  double theta_;
  int64_t max_position_embeddings_;
  // Cache: tables valid for positions [0, table_length) under the frequencies of `frequency_key`.
  int64_t cached_frequency_key_ = -1;
  torch::Tensor cached_cos_;
  torch::Tensor cached_sin_;
};

// x * cos + rotate_half(x) * sin, Hugging Face's layout (halves, not interleaved pairs).
// x: [B, heads, T, head_dim]; cos/sin: fp32 [T, head_dim], cast to x's dtype as HF does.
torch::Tensor apply_rotary_embedding(const torch::Tensor& x, const torch::Tensor& cos,
                                     const torch::Tensor& sin);

}  // namespace lctrain
