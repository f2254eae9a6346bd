// LlamaModel: the LLaMA 1/2/3 forward pass (RMSNorm in fp32, GQA attention with scaled RoPE,
// SwiGLU MLP) with Hugging Face's numerics, on weights held in LlamaWeights.
#pragma once

#include <torch/torch.h>

#include "model/kv_cache.h"
#include "model/llama_config.h"
#include "model/llama_weights.h"
#include "model/ring_attention.h"
#include "model/rope.h"

namespace lctrain {

// RMSNorm as Hugging Face computes it: normalise in fp32, cast back, then scale.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// One decoder layer on hidden states [B, T, hidden] at positions given by cos/sin ([T, head_dim]).
// With a cache, keys/values are appended to it and attention covers all cached positions. With a
// ring, `hidden` is this rank's zigzag share of a sequence split over the ring (cos/sin at those
// tokens' positions) and attention is ring attention (model/ring_attention.h).
torch::Tensor decoder_layer_forward(const LlamaConfig& config, const DecoderLayerWeights& layer,
                                    const torch::Tensor& hidden, const torch::Tensor& cos,
                                    const torch::Tensor& sin, KVCache* cache, size_t layer_index,
                                    KeyValueRing* ring = nullptr);

class LlamaModel {
 public:
  // `runtime_rope` is what this run uses; config.rope_scaling stays what the checkpoint was
  // trained with.
  LlamaModel(LlamaConfig config, LlamaWeights weights, RopeScaling runtime_rope);

  // ids: int64 [B, T] at positions [cache.length(), + T) (0 without a cache).
  // Returns logits [B, T, vocab] in the weights' dtype.
  torch::Tensor forward(const torch::Tensor& ids, KVCache* cache = nullptr);
  // forward() in two halves, so that callers scoring a few positions of a long sequence apply the
  // vocabulary projection only there: final-normed hidden states [B, T, hidden], then logits.
  torch::Tensor hidden_states(const torch::Tensor& ids, KVCache* cache = nullptr);
  torch::Tensor logits(const torch::Tensor& hidden) const;

  KVCache make_cache(int64_t batch, int64_t capacity) const;

  const LlamaConfig& config() const { return config_; }
  const LlamaWeights& weights() const { return weights_; }
  const RopeScaling& runtime_rope() const { return rotary_.scaling(); }
  torch::ScalarType dtype() const { return weights_.embed_tokens.scalar_type(); }
  torch::Device device() const { return weights_.embed_tokens.device(); }

 private:
  LlamaConfig config_;
  LlamaWeights weights_;
  RotaryEmbedding rotary_;
};

}  // namespace lctrain
