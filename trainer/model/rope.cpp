#include "model/rope.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace lctrain {
namespace {

torch::Tensor default_inverse_frequencies(int64_t head_dim, double theta) {
  const auto exponents = torch::arange(0, head_dim, 2, torch::kInt64).to(torch::kFloat32) /
                         static_cast<double>(head_dim);
  return 1.0 / torch::pow(theta, exponents);
}

// Dynamic NTK: the base grows with the sequence once it exceeds the trained window.
RopeFrequencies dynamic_frequencies(const RopeScaling& scaling, int64_t head_dim, double theta,
                                    int64_t max_position_embeddings, int64_t sequence_length) {
  const double length = static_cast<double>(std::max(sequence_length, max_position_embeddings));
  const double dim = static_cast<double>(head_dim);
  const double base =
      theta * std::pow(scaling.factor * length / static_cast<double>(max_position_embeddings) -
                           (scaling.factor - 1.0),
                       dim / (dim - 2.0));
  return {default_inverse_frequencies(head_dim, base), 1.0};
}

double yarn_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// YaRN: high frequencies extrapolate, low frequencies interpolate, a linear ramp in between.
RopeFrequencies yarn_frequencies(const RopeScaling& scaling, int64_t head_dim, double theta,
                                 int64_t max_position_embeddings) {
  double factor = scaling.factor;
  int64_t original_window = max_position_embeddings;
  if (scaling.original_max_position_embeddings) {
    // As transformers does: with an explicit original window, the factor is the window ratio.
    original_window = *scaling.original_max_position_embeddings;
    factor = static_cast<double>(max_position_embeddings) / static_cast<double>(original_window);
  }
  double attention_factor = 1.0;
  if (scaling.attention_factor) {
    attention_factor = *scaling.attention_factor;
  } else if (scaling.mscale && scaling.mscale_all_dim && *scaling.mscale != 0.0 &&
             *scaling.mscale_all_dim != 0.0) {
    attention_factor =
        yarn_mscale(factor, *scaling.mscale) / yarn_mscale(factor, *scaling.mscale_all_dim);
  } else {
    attention_factor = yarn_mscale(factor, 1.0);
  }

  const double dim = static_cast<double>(head_dim);
  const auto correction_dim = [&](double rotations) {
    return dim * std::log(static_cast<double>(original_window) / (rotations * 2.0 * M_PI)) /
           (2.0 * std::log(theta));
  };
  double low = correction_dim(scaling.beta_fast);
  double high = correction_dim(scaling.beta_slow);
  if (scaling.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1.0);
  if (low == high) high += 0.001;  // avoid a zero-width ramp

  const auto position_frequencies =
      torch::pow(theta, torch::arange(0, head_dim, 2).to(torch::kFloat32) / dim);
  const auto extrapolation = 1.0 / position_frequencies;
  const auto interpolation = 1.0 / (factor * position_frequencies);
  const auto ramp =
      torch::clamp((torch::arange(head_dim / 2, torch::kFloat32) - low) / (high - low), 0.0, 1.0);
  const auto extrapolation_weight = 1.0 - ramp;
  return {interpolation * (1.0 - extrapolation_weight) + extrapolation * extrapolation_weight,
          attention_factor};
}

// LLaMA 3.1: wavelengths longer than the original window / low_freq_factor are divided by the
// factor, shorter than window / high_freq_factor kept, and smoothly blended in between.
RopeFrequencies llama3_frequencies(const RopeScaling& scaling, int64_t head_dim, double theta) {
  const auto inverse = default_inverse_frequencies(head_dim, theta);
  const double window = static_cast<double>(*scaling.original_max_position_embeddings);
  const double low_frequency_wavelength = window / scaling.low_freq_factor;
  const double high_frequency_wavelength = window / scaling.high_freq_factor;
  const auto wavelength = 2.0 * M_PI / inverse;
  auto scaled =
      torch::where(wavelength > low_frequency_wavelength, inverse / scaling.factor, inverse);
  const auto smooth = (window / wavelength - scaling.low_freq_factor) /
                      (scaling.high_freq_factor - scaling.low_freq_factor);
  const auto smoothed = (1.0 - smooth) * scaled / scaling.factor + smooth * scaled;
  const auto is_medium =
      (wavelength >= high_frequency_wavelength).logical_and(wavelength <= low_frequency_wavelength);
  return {torch::where(is_medium, smoothed, scaled), 1.0};
}

RopeFrequencies scaled_frequencies(const RopeScaling& scaling, int64_t head_dim, double theta,
                                   int64_t max_position_embeddings, int64_t sequence_length) {
  LCTRAIN_CHECK(head_dim > 0 && head_dim % 2 == 0, "RoPE needs an even head_dim, got {}", head_dim);
  switch (scaling.type) {
    case RopeScalingType::kNone:
      return {default_inverse_frequencies(head_dim, theta), 1.0};
    case RopeScalingType::kLinear:
      // Position Interpolation: f'(x, m) = f(x, m / factor), i.e. every frequency divided by it.
      return {default_inverse_frequencies(head_dim, theta) / scaling.factor, 1.0};
    case RopeScalingType::kDynamic:
      return dynamic_frequencies(scaling, head_dim, theta, max_position_embeddings,
                                 sequence_length);
    case RopeScalingType::kYarn:
      return yarn_frequencies(scaling, head_dim, theta, max_position_embeddings);
    case RopeScalingType::kLlama3:
      LCTRAIN_CHECK(scaling.original_max_position_embeddings.has_value(),
                    "llama3 RoPE scaling needs original_max_position_embeddings");
      return llama3_frequencies(scaling, head_dim, theta);
  }
  throw Error("unknown RoPE scaling type");
}

}  // namespace

RopeFrequencies compute_rope_frequencies(const RopeScaling& scaling, int64_t head_dim, double theta,
                                         int64_t max_position_embeddings, int64_t sequence_length) {
  const RopeFrequencies frequencies =
      scaled_frequencies(scaling, head_dim, theta, max_position_embeddings, sequence_length);
  // Settings that each pass their own check can still combine into nonsense (an overflowing
  // dynamic base, frequencies divided by a factor so large they underflow to 0): every logit would
  // be NaN, so it is refused here instead.
  const bool finite = torch::isfinite(frequencies.inverse_frequencies).all().item<bool>() &&
                      (frequencies.inverse_frequencies > 0).all().item<bool>();
  LCTRAIN_CHECK(
      finite && std::isfinite(frequencies.attention_factor) && frequencies.attention_factor > 0.0,
      "RoPE scaling {} with rope_theta {} and head_dim {} gives frequencies that are not "
      "finite and positive (attention factor {})",
      scaling.describe(), theta, head_dim, frequencies.attention_factor);
  return frequencies;
}

RotaryEmbedding::RotaryEmbedding(RopeScaling scaling, int64_t head_dim, double theta,
                                 int64_t max_position_embeddings)
    : scaling_(std::move(scaling)),
      head_dim_(head_dim),
      theta_(theta),
      max_position_embeddings_(max_position_embeddings) {}

void RotaryEmbedding::rebuild(int64_t frequency_key, int64_t table_length,
                              const torch::Device& device) {
  const RopeFrequencies frequencies = compute_rope_frequencies(
      scaling_, head_dim_, theta_, max_position_embeddings_, frequency_key);
  const auto positions = torch::arange(table_length, torch::kFloat32);
  const auto angles = torch::outer(positions, frequencies.inverse_frequencies);
  const auto doubled = torch::cat({angles, angles}, -1);
  cached_cos_ = (doubled.cos() * frequencies.attention_factor).to(device);
  cached_sin_ = (doubled.sin() * frequencies.attention_factor).to(device);
  cached_frequency_key_ = frequency_key;
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::cos_sin(int64_t start, int64_t length,
                                                                 const torch::Device& device) {
  LCTRAIN_CHECK(start >= 0 && length >= 0, "invalid RoPE positions [{}, {})", start,
                start + length);
  const int64_t end = start + length;
  // Dynamic NTK frequencies depend on the sequence length seen so far (HF: max position + 1);
  // every other scaling has one set of frequencies, and the table only grows.
  const bool dynamic = scaling_.type == RopeScalingType::kDynamic && end > max_position_embeddings_;
  const int64_t frequency_key = dynamic ? end : 0;
  const bool stale = !cached_cos_.defined() || cached_frequency_key_ != frequency_key ||
                     cached_cos_.size(0) < end || cached_cos_.device() != device;
  if (stale) {
    int64_t table_length = end;
    if (!dynamic) {
      table_length = std::max<int64_t>(max_position_embeddings_, 1);
      while (table_length < end) table_length *= 2;
    }
    rebuild(frequency_key, table_length, device);
  }
  return {cached_cos_.narrow(0, start, length), cached_sin_.narrow(0, start, length)};
}

torch::Tensor apply_rotary_embedding(const torch::Tensor& x, const torch::Tensor& cos,
                                     const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const auto rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos.to(x.scalar_type()) + rotated * sin.to(x.scalar_type());
}

}  // namespace lctrain
