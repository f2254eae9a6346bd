#include "model/llama_model.h"

#include "model/blockwise_attention.h"
#include "model/cpu_gemm.h"
#include "model/ring_attention.h"
#include "util/error.h"
#include "util/profile_scopes.h"
#include "util/torch_compat.h"

namespace lctrain {
namespace {

// softmax(q kᵀ / √d) v with queries at positions past .. past + Tq - 1, by LibTorch's
// scaled_dot_product_attention (flash / memory-efficient kernels on CUDA). key/value have
// H / groups heads: where LibTorch's attention takes them so, they are not repeated.
torch::Tensor fused_causal_attention(const torch::Tensor& query, torch::Tensor key,
                                     torch::Tensor value, int64_t past, int64_t groups) {
  const bool native_groups = groups > 1 && compat::kNativeGroupedQueryAttention;
  if (groups > 1 && !native_groups) {
    key = repeat_kv(key, groups);
    value = repeat_kv(value, groups);
  }
  const auto attend = [&](const std::optional<torch::Tensor>& mask, bool is_causal) {
    return compat::scaled_dot_product_attention(query, key, value, mask, is_causal, native_groups);
  };
  const int64_t length = query.size(2);
  if (past == 0) return attend(std::nullopt, true);
  // One new token attends to every cached position: no mask needed.
  if (length == 1) return attend(std::nullopt, false);
  // Several new tokens after a cached prefix: causal mask aligned to the bottom-right.
  const auto rows = torch::arange(past, past + length, torch::kInt64).unsqueeze(1);
  const auto columns = torch::arange(past + length, torch::kInt64).unsqueeze(0);
  return attend((columns <= rows).to(query.device()), false);
}

torch::Tensor attention_forward(const LlamaConfig& config, const AttentionWeights& weights,
                                const torch::Tensor& x, const torch::Tensor& cos,
                                const torch::Tensor& sin, KVCache* cache, size_t layer_index,
                                KeyValueRing* ring) {
  const int64_t batch = x.size(0);
  const int64_t length = x.size(1);
  const int64_t head_dim = config.head_dim;
  const auto heads_first = [&](const torch::Tensor& projected, int64_t heads) {
    return projected.view({batch, length, heads, head_dim}).transpose(1, 2);
  };
  torch::Tensor query, key, value;
  if (weights.qkv_proj.defined() && weights.qkv_bias.defined() == weights.q_bias.defined()) {
    // One GEMM; q, k and v are column ranges of its output (views, no copy).
    const int64_t q_size = config.num_attention_heads * head_dim;
    const int64_t kv_size = config.num_key_value_heads * head_dim;
    const auto parts = linear_layer(x, weights.qkv_proj, weights.qkv_bias)
                           .split_with_sizes({q_size, kv_size, kv_size}, -1);
    query = heads_first(parts[0], config.num_attention_heads);
    key = heads_first(parts[1], config.num_key_value_heads);
    value = heads_first(parts[2], config.num_key_value_heads);
  } else {
    query =
        heads_first(linear_layer(x, weights.q_proj, weights.q_bias), config.num_attention_heads);
    key = heads_first(linear_layer(x, weights.k_proj, weights.k_bias), config.num_key_value_heads);
    value =
        heads_first(linear_layer(x, weights.v_proj, weights.v_bias), config.num_key_value_heads);
  }
  query = apply_rotary_embedding(query, cos, sin);
  key = apply_rotary_embedding(key, cos, sin);

  const auto merge_heads = [&](const torch::Tensor& output, torch::ScalarType dtype) {
    const auto merged = output.to(dtype).transpose(1, 2).reshape(
        {batch, length, config.num_attention_heads * head_dim});
    return linear_layer(merged, weights.o_proj, weights.o_bias);
  };
  if (ring != nullptr) {
    LCTRAIN_CHECK(cache == nullptr, "ring attention does not take a KV cache");
    torch::Tensor output;
    {
      const ProfileScope scope(kAttentionScope);
      output = ring_causal_attention(query, key, value, *ring);
    }
    return merge_heads(output, query.scalar_type());
  }

  const int64_t past = cache != nullptr ? cache->length() : 0;
  if (cache != nullptr) std::tie(key, value) = cache->append(layer_index, key, value);

  const torch::ScalarType dtype = query.scalar_type();
  const bool blockwise = length > 1 && use_blockwise_attention(query, past + length);
  // Where low-precision GEMM is slow on this CPU, the fused/math attention runs in fp32 (see
  // cpu_gemm.h; blockwise is fp32 inside). Keys and values are converted before their heads are
  // repeated, once per key/value head.
  if (!blockwise && gemm_in_fp32(query)) {
    query = query.to(torch::kFloat32);
    key = key.to(torch::kFloat32);
    value = value.to(torch::kFloat32);
  }
  torch::Tensor output;
  {
    const ProfileScope scope(kAttentionScope);
    output = blockwise ? blockwise_causal_attention(query, repeat_kv(key, config.kv_groups()),
                                                    repeat_kv(value, config.kv_groups()), past)
                       : fused_causal_attention(query, key, value, past, config.kv_groups());
  }
  return merge_heads(output, dtype);
}

torch::Tensor mlp_forward(const MlpWeights& weights, const torch::Tensor& x) {
  torch::Tensor gate, up;
  if (weights.gate_up_proj.defined() &&
      weights.gate_up_bias.defined() == weights.gate_bias.defined()) {
    const auto parts = linear_layer(x, weights.gate_up_proj, weights.gate_up_bias).chunk(2, -1);
    gate = parts[0];
    up = parts[1];
  } else {
    gate = linear_layer(x, weights.gate_proj, weights.gate_bias);
    up = linear_layer(x, weights.up_proj, weights.up_bias);
  }
  return linear_layer(torch::silu(gate) * up, weights.down_proj, weights.down_bias);
}

}  // namespace

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  const auto x32 = x.to(torch::kFloat32);
  const auto variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x32 * torch::rsqrt(variance + eps)).to(x.scalar_type());
}

torch::Tensor decoder_layer_forward(const LlamaConfig& config, const DecoderLayerWeights& layer,
                                    const torch::Tensor& hidden, const torch::Tensor& cos,
                                    const torch::Tensor& sin, KVCache* cache, size_t layer_index,
                                    KeyValueRing* ring) {
  auto residual = hidden;
  auto x = rms_norm(hidden, layer.input_norm, config.rms_norm_eps);
  x = residual + attention_forward(config, layer.attention, x, cos, sin, cache, layer_index, ring);
  residual = x;
  x = rms_norm(x, layer.post_attention_norm, config.rms_norm_eps);
  return residual + mlp_forward(layer.mlp, x);
}

LlamaModel::LlamaModel(LlamaConfig config, LlamaWeights weights, RopeScaling runtime_rope)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      rotary_(std::move(runtime_rope), config_.head_dim, config_.rope_theta,
              config_.max_position_embeddings) {
  LCTRAIN_CHECK(static_cast<int64_t>(weights_.layers.size()) == config_.num_hidden_layers,
                "model has {} layers but config says {}", weights_.layers.size(),
                config_.num_hidden_layers);
  if (config_.tie_word_embeddings) weights_.lm_head = weights_.embed_tokens;
}

torch::Tensor LlamaModel::forward(const torch::Tensor& ids, KVCache* cache) {
  return logits(hidden_states(ids, cache));
}

torch::Tensor LlamaModel::logits(const torch::Tensor& hidden) const {
  return linear_layer(hidden, weights_.lm_head);
}

torch::Tensor LlamaModel::hidden_states(const torch::Tensor& ids, KVCache* cache) {
  LCTRAIN_CHECK(ids.dim() == 2, "token ids must be [batch, length], got {} dimensions", ids.dim());
  LCTRAIN_CHECK(ids.scalar_type() == torch::kInt64, "token ids must be int64");
  if (ids.numel() > 0) {
    const int64_t low = ids.min().item<int64_t>();
    const int64_t high = ids.max().item<int64_t>();
    LCTRAIN_CHECK(low >= 0 && high < config_.vocab_size,
                  "token id {} is outside the vocabulary [0, {})", low < 0 ? low : high,
                  config_.vocab_size);
  }
  const int64_t start = cache != nullptr ? cache->length() : 0;
  const int64_t length = ids.size(1);
  const auto [cos, sin] = rotary_.cos_sin(start, length, device());

  auto hidden = torch::embedding(weights_.embed_tokens, ids.to(device()));
  for (size_t index = 0; index < weights_.layers.size(); ++index) {
    hidden = decoder_layer_forward(config_, weights_.layers[index], hidden, cos, sin, cache, index);
  }
  if (cache != nullptr) cache->advance(length);
  return rms_norm(hidden, weights_.final_norm, config_.rms_norm_eps);
}

KVCache LlamaModel::make_cache(int64_t batch, int64_t capacity) const {
  return KVCache(config_, batch, capacity, dtype(), device());
}

}  // namespace lctrain
