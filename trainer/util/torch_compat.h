// The one place for differences between LibTorch 1.13 (Debian, CPU) and 2.x (pip, CUDA).
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#include <optional>

#define LCTRAIN_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||          \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace lctrain::compat {

// Fused attention: softmax(q k^T / sqrt(d) + mask) v. q: [B, H, Tq, D], k/v: [B, H, Tk, D].
// `mask` is boolean (true = attend) or additive; `is_causal` applies the top-left causal mask.
// 2.x has the public op (flash / memory-efficient kernels on CUDA); 1.13 has only the private one.
inline torch::Tensor scaled_dot_product_attention(const torch::Tensor& query,
                                                  const torch::Tensor& key,
                                                  const torch::Tensor& value,
                                                  const std::optional<torch::Tensor>& mask,
                                                  bool is_causal) {
  const c10::optional<torch::Tensor> attention_mask =
      mask ? c10::optional<torch::Tensor>(*mask) : c10::nullopt;
#if LCTRAIN_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(query, key, value, attention_mask, 0.0, is_causal);
#else
  return std::get<0>(
      at::_scaled_dot_product_attention(query, key, value, attention_mask, 0.0, false, is_causal));
#endif
}

}  // namespace lctrain::compat
