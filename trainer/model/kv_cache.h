// KVCache: keys and values of past positions per decoder layer, preallocated to a capacity so
// that greedy decoding appends in place instead of re-concatenating every step.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "model/llama_config.h"

namespace lctrain {

class KVCache {
 public:
  KVCache(const LlamaConfig& config, int64_t batch, int64_t capacity, torch::ScalarType dtype,
          const torch::Device& device);

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }

  // Stores keys/values [B, kv_heads, T, head_dim] of `layer` at positions [length, length + T)
  // and returns the cached keys/values for positions [0, length + T).
  std::pair<torch::Tensor, torch::Tensor> append(size_t layer, const torch::Tensor& keys,
                                                 const torch::Tensor& values);
  // Called once per forward, after every layer appended `count` positions.
  void advance(int64_t count);

 private:
  std::vector<torch::Tensor> keys_;
  std::vector<torch::Tensor> values_;
  int64_t capacity_;
  int64_t length_ = 0;
};

}  // namespace lctrain
