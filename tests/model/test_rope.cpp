// RoPE scalings against Hugging Face's formulas written out independently in double precision.
#include <gtest/gtest.h>

#include <cmath>

#include "model/rope.h"
#include "util/error.h"

namespace lctrain {
namespace {

constexpr int64_t kHeadDim = 16;
constexpr double kTheta = 10000.0;

std::vector<double> plain_frequencies(int64_t dim, double theta) {
  std::vector<double> frequencies;
  for (int64_t i = 0; i < dim; i += 2)
    frequencies.push_back(1.0 / std::pow(theta, double(i) / dim));
  return frequencies;
}

void expect_frequencies(const RopeFrequencies& actual, const std::vector<double>& expected) {
  ASSERT_EQ(actual.inverse_frequencies.numel(), static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(actual.inverse_frequencies[i].item<double>(), expected[i],
                1e-6 * expected[i] + 1e-9)
        << "frequency " << i;
  }
}

TEST(Rope, LinearDividesEveryFrequencyByTheFactor) {
  std::vector<double> expected = plain_frequencies(kHeadDim, kTheta);
  for (double& value : expected) value /= 4.0;
  expect_frequencies(compute_rope_frequencies(RopeScaling::linear(4.0), kHeadDim, kTheta, 32, 100),
                     expected);
}

TEST(Rope, PositionInterpolationEqualsScaledPositions) {
  // The paper's definition f'(x, m) = f(x, m L / L'): position 4m under linear(4) is position m.
  RotaryEmbedding interpolated(RopeScaling::linear(4.0), kHeadDim, kTheta, 32);
  RotaryEmbedding plain(RopeScaling::none(), kHeadDim, kTheta, 32);
  const auto [cos_pi, sin_pi] = interpolated.cos_sin(0, 64, torch::kCPU);
  const auto [cos_plain, sin_plain] = plain.cos_sin(0, 16, torch::kCPU);
  for (int64_t m = 0; m < 16; ++m) {
    EXPECT_TRUE(torch::allclose(cos_pi[4 * m], cos_plain[m], 1e-5, 1e-5)) << m;
    EXPECT_TRUE(torch::allclose(sin_pi[4 * m], sin_plain[m], 1e-5, 1e-5)) << m;
  }
}

TEST(Rope, DynamicChangesOnlyBeyondTheTrainedWindow) {
  const RopeScaling dynamic = RopeScaling::dynamic(4.0);
  expect_frequencies(compute_rope_frequencies(dynamic, kHeadDim, kTheta, 32, 20),
                     plain_frequencies(kHeadDim, kTheta));
  const double dim = kHeadDim;
  const double base = kTheta * std::pow(4.0 * 96 / 32 - 3.0, dim / (dim - 2.0));
  expect_frequencies(compute_rope_frequencies(dynamic, kHeadDim, kTheta, 32, 96),
                     plain_frequencies(kHeadDim, base));
}

TEST(Rope, DynamicTablesFollowTheSequenceLength) {
  RotaryEmbedding rotary(RopeScaling::dynamic(4.0), kHeadDim, kTheta, 32);
  const auto short_cos = rotary.cos_sin(0, 16, torch::kCPU).first.clone();
  const auto long_cos = rotary.cos_sin(0, 96, torch::kCPU).first.clone();
  // Within the window the base is unchanged; a longer sequence stretches every position.
  EXPECT_FALSE(torch::allclose(short_cos, long_cos.narrow(0, 0, 16)));
  const auto again = rotary.cos_sin(0, 16, torch::kCPU).first;
  EXPECT_TRUE(torch::equal(short_cos, again));
}

TEST(Rope, YarnBlendsAndScalesAttention) {
  RopeScaling yarn = RopeScaling::from_json_text(R"({"rope_type":"yarn","factor":4.0})", "test");
  const RopeFrequencies frequencies = compute_rope_frequencies(yarn, kHeadDim, kTheta, 32, 32);
  EXPECT_NEAR(frequencies.attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-12);
  // Independent reimplementation of transformers' _compute_yarn_parameters.
  const double dim = kHeadDim;
  const auto correction = [&](double rotations) {
    return dim * std::log(32.0 / (rotations * 2 * M_PI)) / (2 * std::log(kTheta));
  };
  const double low = std::max(std::floor(correction(32.0)), 0.0);
  double high = std::min(std::ceil(correction(1.0)), dim - 1);
  if (low == high) high += 0.001;
  std::vector<double> expected;
  const std::vector<double> plain = plain_frequencies(kHeadDim, kTheta);
  for (size_t i = 0; i < plain.size(); ++i) {
    const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1.0 - ramp;
    expected.push_back(plain[i] / 4.0 * (1 - extrapolation_weight) +
                       plain[i] * extrapolation_weight);
  }
  expect_frequencies(frequencies, expected);
  // The attention factor multiplies the tables.
  RotaryEmbedding rotary(yarn, kHeadDim, kTheta, 32);
  EXPECT_NEAR(rotary.cos_sin(0, 1, torch::kCPU).first[0][0].item<double>(),
              frequencies.attention_factor, 1e-6);
}

TEST(Rope, Llama3KeepsHighFrequenciesAndScalesLowOnes) {
  const RopeScaling llama3 = RopeScaling::from_json_text(
      R"({"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
          "original_max_position_embeddings":64})",
      "test");
  const std::vector<double> plain = plain_frequencies(kHeadDim, kTheta);
  const RopeFrequencies frequencies = compute_rope_frequencies(llama3, kHeadDim, kTheta, 512, 512);
  for (size_t i = 0; i < plain.size(); ++i) {
    const double wavelength = 2 * M_PI / plain[i];
    double expected = plain[i];
    if (wavelength > 64.0) {
      expected = plain[i] / 8.0;
    } else if (wavelength >= 16.0) {
      const double smooth = (64.0 / wavelength - 1.0) / 3.0;
      expected = (1 - smooth) * plain[i] / 8.0 + smooth * plain[i];
    }
    EXPECT_NEAR(frequencies.inverse_frequencies[static_cast<int64_t>(i)].item<double>(), expected,
                1e-6 * expected)
        << i;
  }
}

TEST(Rope, ApplyRotatesHalves) {
  // x = e_0 rotated by angle a lands on cos(a) e_0 + sin(a) e_{d/2}.
  auto x = torch::zeros({1, 1, 1, 4});
  x[0][0][0][0] = 1.0;
  const auto cos = torch::full({1, 4}, std::cos(0.3));
  const auto sin = torch::full({1, 4}, std::sin(0.3));
  const auto rotated = apply_rotary_embedding(x, cos, sin);
  EXPECT_NEAR(rotated[0][0][0][0].item<double>(), std::cos(0.3), 1e-6);
  EXPECT_NEAR(rotated[0][0][0][2].item<double>(), std::sin(0.3), 1e-6);
}

TEST(RopeScaling, ParsesBothKeyNamesAndRoundTrips) {
  const auto modern = RopeScaling::from_json_text(R"({"rope_type":"linear","factor":4})", "t");
  const auto legacy = RopeScaling::from_json_text(R"({"type":"linear","factor":4.0})", "t");
  EXPECT_EQ(modern.type, RopeScalingType::kLinear);
  EXPECT_EQ(legacy.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(legacy.factor, 4.0);
  const auto json = modern.to_json();
  EXPECT_EQ(json["rope_type"], "linear");
  EXPECT_EQ(json["type"], "linear");
  EXPECT_EQ(RopeScaling::from_json(json, "t").factor, 4.0);
  EXPECT_TRUE(RopeScaling::from_json_text("null", "t").is_none());
  EXPECT_TRUE(RopeScaling::from_json_text(R"({"rope_type":"default"})", "t").is_none());
}

TEST(RopeScaling, RejectsBadInputWithTheKeyNamed) {
  const auto message = [](const std::string& text) {
    try {
      RopeScaling::from_json_text(text, "--rope-scaling");
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(R"({"rope_type":"magic","factor":2})").find("magic"), std::string::npos);
  EXPECT_NE(message(R"({"rope_type":"linear"})").find("factor"), std::string::npos);
  EXPECT_NE(message(R"({"rope_type":"linear","factor":-1})").find("factor"), std::string::npos);
  EXPECT_NE(message(R"({"rope_type":"linear","factor":"4"})").find("factor"), std::string::npos);
  EXPECT_NE(message(R"({"factor":4})").find("rope_type"), std::string::npos);
  EXPECT_NE(message(R"({"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4})")
                .find("original_max_position_embeddings"),
            std::string::npos);
  EXPECT_NE(message("{not json").find("--rope-scaling"), std::string::npos);
  EXPECT_NE(message("[1,2]").find("object"), std::string::npos);
}

TEST(RopeScaling, RangeChecksEveryYarnAndLlama3Setting) {
  const auto message = [](const std::string& text) {
    try {
      RopeScaling::from_json_text(text, "--rope-scaling");
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  const auto expect_refused = [&](const std::string& text, const std::string& key) {
    const std::string error = message(text);
    EXPECT_NE(error.find(key), std::string::npos) << text << " -> " << error;
    EXPECT_NE(error.find("--rope-scaling"), std::string::npos) << text << " -> " << error;
  };
  const std::string yarn = R"({"rope_type":"yarn","factor":4,)";
  expect_refused(yarn + R"("beta_fast":-1})", "beta_fast");
  expect_refused(yarn + R"("beta_slow":-2})", "beta_slow");
  expect_refused(yarn + R"("beta_slow":1e9})", "beta_slow");               // above beta_fast 32
  expect_refused(yarn + R"("beta_fast":1,"beta_slow":32})", "beta_fast");  // swapped
  expect_refused(yarn + R"("attention_factor":0})", "attention_factor");
  expect_refused(yarn + R"("attention_factor":-1})", "attention_factor");
  expect_refused(yarn + R"("mscale":-0.7,"mscale_all_dim":1})", "mscale");
  expect_refused(yarn + R"("mscale":1,"mscale_all_dim":-1})", "mscale_all_dim");
  expect_refused(R"({"rope_type":"dynamic","factor":0.5})", "factor");
  expect_refused(R"({"rope_type":"llama3","factor":8,"low_freq_factor":4,"high_freq_factor":1,)"
                 R"("original_max_position_embeddings":8192})",
                 "high_freq_factor");
  expect_refused(R"({"rope_type":"llama3","factor":8,"low_freq_factor":-1,"high_freq_factor":4,)"
                 R"("original_max_position_embeddings":8192})",
                 "low_freq_factor");
  // What transformers accepts still parses: its defaults, a zero beta or mscale meaning "unset".
  EXPECT_EQ(message(yarn + R"("beta_fast":0,"beta_slow":0,"mscale":0,"mscale_all_dim":0})"),
            "no error");
  EXPECT_EQ(
      message(yarn + R"("beta_fast":16,"beta_slow":2,"mscale":0.707,"mscale_all_dim":0.707})"),
      "no error");
}

TEST(Rope, FrequenciesThatAreNotFiniteAreRefused) {
  // Each setting passes on its own, but the interpolated frequencies underflow to zero.
  const RopeScaling yarn =
      RopeScaling::from_json_text(R"({"rope_type":"yarn","factor":1e300})", "t");
  std::string error = "no error";
  try {
    compute_rope_frequencies(yarn, kHeadDim, kTheta, 64, 64);
  } catch (const Error& caught) {
    error = caught.what();
  }
  EXPECT_NE(error.find("not finite"), std::string::npos) << error;
  // An overflowing dynamic NTK base.
  error = "no error";
  try {
    compute_rope_frequencies(RopeScaling::dynamic(1e300), kHeadDim, kTheta, 64, 1 << 20);
  } catch (const Error& caught) {
    error = caught.what();
  }
  EXPECT_NE(error.find("not finite"), std::string::npos) << error;
}

}  // namespace
}  // namespace lctrain
