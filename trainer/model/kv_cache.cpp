#include "model/kv_cache.h"

#include "util/error.h"

namespace lctrain {

KVCache::KVCache(const LlamaConfig& config, int64_t batch, int64_t capacity,
                 torch::ScalarType dtype, const torch::Device& device)
    : capacity_(capacity) {
  LCTRAIN_CHECK(batch > 0 && capacity > 0, "KV cache needs a positive batch and capacity");
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    keys_.push_back(
        torch::empty({batch, config.num_key_value_heads, capacity, config.head_dim}, options));
    values_.push_back(torch::empty_like(keys_.back()));
  }
}

std::pair<torch::Tensor, torch::Tensor> KVCache::append(size_t layer, const torch::Tensor& keys,
                                                        const torch::Tensor& values) {
  const int64_t count = keys.size(2);
  LCTRAIN_CHECK(length_ + count <= capacity_,
                "KV cache overflow: {} cached + {} new positions exceed its capacity {}", length_,
                count, capacity_);
  keys_.at(layer).narrow(2, length_, count).copy_(keys);
  values_.at(layer).narrow(2, length_, count).copy_(values);
  return {keys_[layer].narrow(2, 0, length_ + count), values_[layer].narrow(2, 0, length_ + count)};
}

void KVCache::advance(int64_t count) { length_ += count; }

}  // namespace lctrain
