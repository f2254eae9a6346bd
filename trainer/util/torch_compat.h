// The one place for differences between LibTorch 1.13 (Debian, CPU) and 2.x (pip, CUDA).
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#include <optional>
#include <stdexcept>
#include <vector>

#define LCTRAIN_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||          \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace lctrain::compat {

// Whether scaled_dot_product_attention takes keys/values with fewer heads than the queries
// (grouped-query attention, `enable_gqa`, from 2.5): the flash kernel then reads each key/value
// head for its group of query heads, and nobody materialises the repeated K/V.
#if LCTRAIN_TORCH_AT_LEAST(2, 5)
inline constexpr bool kNativeGroupedQueryAttention = true;
#else
inline constexpr bool kNativeGroupedQueryAttention = false;
#endif

// Fused attention: softmax(q k^T / sqrt(d) + mask) v. q: [B, H, Tq, D], k/v: [B, H, Tk, D], or
// with `grouped` (only where kNativeGroupedQueryAttention) k/v of H / G heads, query head h using
// key/value head h / G (Hugging Face's repeat_kv layout). `mask` is boolean (true = attend) or
// additive; `is_causal` applies the top-left causal mask. 2.x has the public op (flash /
// memory-efficient kernels on CUDA); 1.13 has only the private one.
inline torch::Tensor scaled_dot_product_attention(const torch::Tensor& query,
                                                  const torch::Tensor& key,
                                                  const torch::Tensor& value,
                                                  const std::optional<torch::Tensor>& mask,
                                                  bool is_causal, bool grouped = false) {
  const c10::optional<torch::Tensor> attention_mask =
      mask ? c10::optional<torch::Tensor>(*mask) : c10::nullopt;
#if LCTRAIN_TORCH_AT_LEAST(2, 5)
  return at::scaled_dot_product_attention(query, key, value, attention_mask, 0.0, is_causal,
                                          c10::nullopt, /*enable_gqa=*/grouped);
#else
  if (grouped) throw std::logic_error("grouped-query attention needs LibTorch 2.5 or later");
#if LCTRAIN_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(query, key, value, attention_mask, 0.0, is_causal);
#else
  return std::get<0>(
      at::_scaled_dot_product_attention(query, key, value, attention_mask, 0.0, false, is_causal));
#endif
#endif
}

// AdamW in one kernel over a list of parameters (torch.optim.AdamW(fused=True)): `steps` holds
// one fp32 scalar tensor per parameter, on its device, already counting this step. 2.x has it
// (CUDA from 2.0, CPU from 2.4); 1.13 does not, and callers then run the unfused update.
#if LCTRAIN_TORCH_AT_LEAST(2, 4)
inline constexpr bool kFusedAdamW = true;
#else
inline constexpr bool kFusedAdamW = false;
#endif

inline void fused_adamw_step(const std::vector<torch::Tensor>& parameters,
                             const std::vector<torch::Tensor>& gradients,
                             const std::vector<torch::Tensor>& exp_avg,
                             const std::vector<torch::Tensor>& exp_avg_sq,
                             const std::vector<torch::Tensor>& steps, double lr, double beta1,
                             double beta2, double weight_decay, double eps) {
#if LCTRAIN_TORCH_AT_LEAST(2, 4)
  at::_fused_adamw_(parameters, gradients, exp_avg, exp_avg_sq, /*max_exp_avg_sqs=*/{}, steps, lr,
                    beta1, beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  (void)parameters, (void)gradients, (void)exp_avg, (void)exp_avg_sq, (void)steps, (void)lr,
      (void)beta1, (void)beta2, (void)weight_decay, (void)eps;
  throw std::logic_error("fused AdamW needs LibTorch 2.4 or later");
#endif
}

}  // namespace lctrain::compat
