// The one place for differences between LibTorch 1.13 (Debian, CPU) and 2.x (pip, CUDA).
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#define LCTRAIN_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||          \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace lctrain::compat {

namespace detail {
// The newer ops are found by argument-dependent lookup (they live in at::, the namespace of
// at::Tensor) and probed by overload resolution: a LibTorch that lacks one, or declares it with
// another signature, selects the fallback instead of failing to compile. Declared before
// lctrain's own wrappers so that only LibTorch's functions can match.
template <typename T>
auto sdpa_takes_groups(int)
    -> decltype(scaled_dot_product_attention(std::declval<const T&>(), std::declval<const T&>(),
                                             std::declval<const T&>(),
                                             std::declval<c10::optional<T>>(), 0.0, false,
                                             c10::optional<double>(), true),
                std::true_type());
template <typename T>
std::false_type sdpa_takes_groups(long);

template <typename List>
auto has_fused_adamw(int)
    -> decltype(_fused_adamw_(std::declval<List>(), std::declval<List>(), std::declval<List>(),
                              std::declval<List>(), std::declval<List>(), std::declval<List>(), 1.0,
                              1.0, 1.0, 1.0, 1.0, false, false),
                std::true_type());
template <typename List>
std::false_type has_fused_adamw(long);

template <typename T>
T grouped_sdpa(const T& query, const T& key, const T& value, const c10::optional<T>& mask,
               bool is_causal) {
  if constexpr (decltype(sdpa_takes_groups<T>(0))::value) {
    return scaled_dot_product_attention(query, key, value, mask, 0.0, is_causal,
                                        c10::optional<double>(), true);
  } else {
    throw std::logic_error("this LibTorch's attention does not take grouped key/value heads");
  }
}

template <typename List>
void fused_adamw(List parameters, List gradients, List exp_avg, List exp_avg_sq, List steps,
                 double lr, double beta1, double beta2, double weight_decay, double eps) {
  if constexpr (decltype(has_fused_adamw<List>(0))::value) {
    _fused_adamw_(parameters, gradients, exp_avg, exp_avg_sq, List(), steps, lr, beta1, beta2,
                  weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
  } else {
    throw std::logic_error("this LibTorch has no fused AdamW kernel");
  }
}
}  // namespace detail

// Whether scaled_dot_product_attention takes keys/values with fewer heads than the queries
// (grouped-query attention, `enable_gqa`, from 2.5): the flash kernel then reads each key/value
// head for its group of query heads, and nobody materialises the repeated K/V.
inline constexpr bool kNativeGroupedQueryAttention =
    decltype(detail::sdpa_takes_groups<torch::Tensor>(0))::value;

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
  if (grouped) return detail::grouped_sdpa(query, key, value, attention_mask, is_causal);
#if LCTRAIN_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(query, key, value, attention_mask, 0.0, is_causal);
#else
  return std::get<0>(
      at::_scaled_dot_product_attention(query, key, value, attention_mask, 0.0, false, is_causal));
#endif
}

// AdamW in one kernel over a list of parameters (torch.optim.AdamW(fused=True)): `steps` holds
// one fp32 scalar tensor per parameter, on its device, already counting this step. 2.x has it
// (CUDA from 2.0, CPU from 2.4); 1.13 does not, and callers then run the unfused update.
inline constexpr bool kFusedAdamW = decltype(detail::has_fused_adamw<at::TensorList>(0))::value;

inline void fused_adamw_step(const std::vector<torch::Tensor>& parameters,
                             const std::vector<torch::Tensor>& gradients,
                             const std::vector<torch::Tensor>& exp_avg,
                             const std::vector<torch::Tensor>& exp_avg_sq,
                             const std::vector<torch::Tensor>& steps, double lr, double beta1,
                             double beta2, double weight_decay, double eps) {
  detail::fused_adamw<at::TensorList>(parameters, gradients, exp_avg, exp_avg_sq, steps, lr, beta1,
                                      beta2, weight_decay, eps);
}

}  // namespace lctrain::compat
