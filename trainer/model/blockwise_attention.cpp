#include "model/blockwise_attention.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "util/error.h"

namespace lctrain {

torch::Tensor blockwise_causal_attention(const torch::Tensor& query, const torch::Tensor& key,
                                         const torch::Tensor& value, int64_t past, int64_t block) {
  LCTRAIN_CHECK(query.dim() == 4 && key.dim() == 4 && value.dim() == 4,
                "blockwise attention takes [B, H, T, D] tensors");
  const int64_t length = query.size(2);
  LCTRAIN_CHECK(key.size(2) == past + length && value.size(2) == past + length,
                "blockwise attention: {} keys for {} past + {} new positions", key.size(2), past,
                length);
  LCTRAIN_CHECK(block > 0, "attention block must be positive");
  const double scale = 1.0 / std::sqrt(static_cast<double>(query.size(3)));
  const auto fp32 = query.options().dtype(torch::kFloat32);
  const auto positions = query.options().dtype(torch::kInt64);
  const auto keys32 = key.to(torch::kFloat32);
  const auto values32 = value.to(torch::kFloat32);

  std::vector<torch::Tensor> outputs;
  for (int64_t q0 = 0; q0 < length; q0 += block) {
    const int64_t rows = std::min(block, length - q0);
    const auto q = query.narrow(2, q0, rows).to(torch::kFloat32) * scale;
    auto sizes = q.sizes().vec();
    sizes.back() = 1;
    auto running_max = torch::full(sizes, -std::numeric_limits<float>::infinity(), fp32);
    auto running_sum = torch::zeros(sizes, fp32);
    auto accumulated = torch::zeros_like(q);
    // Keys after the block's last query are masked for every row: stop there.
    const int64_t keys_needed = past + q0 + rows;
    const auto row_positions = torch::arange(past + q0, past + q0 + rows, positions).unsqueeze(1);
    for (int64_t k0 = 0; k0 < keys_needed; k0 += block) {
      const int64_t columns = std::min(block, keys_needed - k0);
      auto scores = torch::matmul(q, keys32.narrow(2, k0, columns).transpose(-1, -2));
      if (k0 + columns - 1 > past + q0) {  // the block reaches past the first row's position
        const auto column_positions = torch::arange(k0, k0 + columns, positions).unsqueeze(0);
        scores.masked_fill_(column_positions > row_positions,
                            -std::numeric_limits<float>::infinity());
      }
      // Key 0 is visible to every row, so the running maximum is finite after the first block.
      const auto new_max = torch::maximum(running_max, std::get<0>(scores.max(-1, true)));
      const auto probabilities = torch::exp(scores - new_max);
      const auto correction = torch::exp(running_max - new_max);
      running_sum = running_sum * correction + probabilities.sum(-1, true);
      accumulated =
          accumulated * correction + torch::matmul(probabilities, values32.narrow(2, k0, columns));
      running_max = new_max;
    }
    outputs.push_back(accumulated / running_sum);
  }
  return torch::cat(outputs, 2).to(query.scalar_type());
}

bool use_blockwise_attention(const torch::Tensor& query, int64_t keys) {
  static const std::string forced = [] {
    const char* value = std::getenv("LCTRAIN_ATTENTION");
    return std::string(value != nullptr ? value : "");
  }();
  if (forced == "math") return false;
  if (forced == "blockwise") return !torch::GradMode::is_enabled();
  return query.device().is_cpu() && !torch::GradMode::is_enabled() && keys >= 4096;
}

}  // namespace lctrain
