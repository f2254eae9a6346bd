// The compute paths that differ by device: bf16 forward against the f32 reference, the fused
// attention kernel against plain math, and training on a GPU (NCCL, and against the CPU run).
// Every case runs on the CPU; the CUDA instances are skipped where no GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <sstream>

#include "io/hf_model_dir.h"
#include "io/token_ids_file.h"
#include "support/test_support.h"
#include "util/json_fields.h"
#include "util/torch_compat.h"

namespace lctrain {
namespace {

using testing::fixture_dir;
using testing::quoted;
using testing::run_command;
using testing::ScratchDir;

torch::Device device_named(const std::string& name) {
  return name == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

#define SKIP_WITHOUT(device_name)                                 \
  if ((device_name) == "cuda" && !torch::cuda::is_available()) {  \
    GTEST_SKIP() << "no CUDA device (CPU-only build or machine)"; \
  }

class OnDevice : public ::testing::TestWithParam<std::string> {};

torch::Tensor fixture_logits(torch::ScalarType dtype, const torch::Device& device) {
  const auto fixture = fixture_dir("tiny-llama-parity");
  io::ModelLoadOptions options;
  options.dtype = dtype;
  options.device = device;
  LlamaModel model = io::load_model(fixture, options);
  const auto ids = io::read_token_ids(fixture / "ids.txt");
  torch::NoGradGuard no_grad;
  return model.forward(torch::tensor(ids, torch::kInt64).unsqueeze(0).to(device))
      .squeeze(0)
      .to(torch::kCPU, torch::kFloat32);
}

TEST_P(OnDevice, Bf16ForwardAgreesWithTheF32Reference) {
  SKIP_WITHOUT(GetParam());
  const torch::Tensor reference = fixture_logits(torch::kFloat32, torch::kCPU);
  const torch::Tensor actual = fixture_logits(torch::kBFloat16, device_named(GetParam()));
  // bf16 keeps 8 bits of mantissa: compare relative to the logits' scale, and the predictions.
  const double scale = reference.abs().max().item<double>();
  const double max_diff = (actual - reference).abs().max().item<double>() / scale;
  const double top1 =
      actual.argmax(-1).eq(reference.argmax(-1)).to(torch::kFloat64).mean().item<double>();
  std::cout << "[bf16 " << GetParam() << "] max |diff| / max |logit| " << max_diff
            << ", top-1 agreement " << top1 << std::endl;
  EXPECT_LT(max_diff, 0.03);
  EXPECT_GT(top1, 0.95);
  // Guard: the comparison can fail (a different model's logits are far away).
  EXPECT_GT((reference.flip(0) - reference).abs().max().item<double>() / scale, 0.1);
}

// softmax(q k^T / sqrt(d) + mask) v in float64, the definition the fused kernels must meet.
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, const torch::Tensor& allowed) {
  const auto q64 = q.to(torch::kCPU, torch::kFloat64);
  const auto scores = torch::matmul(q64, k.to(torch::kCPU, torch::kFloat64).transpose(-2, -1)) /
                      std::sqrt(static_cast<double>(q.size(-1)));
  const auto masked =
      scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(masked, -1), v.to(torch::kCPU, torch::kFloat64));
}

// max |actual - expected| / max |expected|: bf16 rounds relative to magnitude.
double relative_difference(const torch::Tensor& actual, const torch::Tensor& expected) {
  return (actual.to(torch::kCPU, torch::kFloat64) - expected).abs().max().item<double>() /
         expected.abs().max().item<double>();
}

TEST_P(OnDevice, FusedAttentionEqualsTheMathDefinition) {
  SKIP_WITHOUT(GetParam());
  const torch::Device device = device_named(GetParam());
  torch::manual_seed(0);
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    const auto options = torch::TensorOptions().dtype(dtype).device(device);
    // Head dim 128 as in LLaMA; Tq < Tk covers the chunked-prefill mask (bottom-right causal).
    const auto q = torch::randn({2, 4, 96, 128}, options);
    const auto k = torch::randn({2, 4, 160, 128}, options);
    const auto v = torch::randn({2, 4, 160, 128}, options);
    const double tolerance = dtype == torch::kFloat32 ? 1e-5 : 3e-2;

    const auto causal = torch::ones({96, 96}, torch::kBool).tril();
    const auto square_k = k.narrow(2, 0, 96), square_v = v.narrow(2, 0, 96);
    const auto fused_causal =
        compat::scaled_dot_product_attention(q, square_k, square_v, std::nullopt, true);
    const double causal_diff =
        relative_difference(fused_causal, reference_attention(q, square_k, square_v, causal));

    const auto bottom_right = torch::ones({96, 160}, torch::kBool).tril(160 - 96);
    const auto fused_masked = compat::scaled_dot_product_attention(
        q, k, v, std::optional<torch::Tensor>(bottom_right.to(device)), false);
    const double masked_diff =
        relative_difference(fused_masked, reference_attention(q, k, v, bottom_right));
    std::cout << "[attention " << GetParam() << " " << c10::toString(dtype)
              << "] relative error: causal " << causal_diff << ", bottom-right mask " << masked_diff
              << std::endl;
    EXPECT_LT(causal_diff, tolerance) << c10::toString(dtype);
    EXPECT_LT(masked_diff, tolerance) << c10::toString(dtype);
    // Guard: the tolerance tells masks apart (top-left instead of bottom-right fails).
    const auto top_left = torch::ones({96, 160}, torch::kBool).tril();
    EXPECT_GT(relative_difference(fused_masked, reference_attention(q, k, v, top_left)), 0.1);
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, OnDevice, ::testing::Values("cpu", "cuda"));

// A tiny random-init recipe (the demo's model) written into a scratch folder.
class GpuTraining : public ::testing::Test {
 protected:
  std::string train_args(const std::string& out, const std::string& extra) const {
    const auto root = testing::source_dir();
    return "train --config " + quoted(root / "configs/demo-tiny.yaml") +
           " model.config=" + quoted(root / "configs/models/tiny-test.json") +
           " data.path=" + quoted(root / "data/sample-tokens.txt") +
           " output.dir=" + quoted(scratch_ / out) +
           " output.checkpoint_every=0 training.steps=4 " + extra;
  }
  std::vector<double> losses(const std::string& out) const {
    std::vector<double> result;
    std::istringstream lines(testing::read_text(scratch_ / out / "metrics.jsonl"));
    for (std::string line; std::getline(lines, line);) {
      result.push_back(parse_json(line, "metrics.jsonl").at("loss").get<double>());
    }
    return result;
  }
  ScratchDir scratch_;
};

TEST_F(GpuTraining, NcclProcessGroupTrainsOnOneGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto result = testing::run_lctrain(
      "launch --nproc-per-node 1 -- " +
      train_args("nccl", "distributed.backend=nccl training.device=cuda training.precision=bf16"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("(nccl)"), std::string::npos) << result.output;
  const auto values = losses("nccl");
  ASSERT_EQ(values.size(), 4u);
  for (const double loss : values) EXPECT_TRUE(std::isfinite(loss));
  EXPECT_TRUE(std::filesystem::exists(scratch_ / "nccl/final/config.json"));
}

TEST_F(GpuTraining, Fp32TrainingOnTheGpuFollowsTheCpuRun) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const char* device : {"cpu", "cuda"}) {
    const auto result = testing::run_lctrain(
        train_args(device, std::string("training.precision=fp32 training.device=") + device));
    ASSERT_EQ(result.exit_code, 0) << result.output;
  }
  const auto cpu = losses("cpu"), cuda = losses("cuda");
  ASSERT_EQ(cpu.size(), cuda.size());
  for (size_t step = 0; step < cpu.size(); ++step) {
    std::cout << "[fp32 step " << step + 1 << "] cpu " << cpu[step] << " cuda " << cuda[step]
              << std::endl;
    EXPECT_NEAR(cpu[step], cuda[step], 1e-3 * std::abs(cpu[step])) << "step " << step + 1;
  }
}

TEST_F(GpuTraining, Fp16WithDynamicLossScalingSkipsOverflowsAndLearns) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  // 2^40 overflows fp16 gradients at first: the scale must back off until steps go through.
  const auto result = testing::run_lctrain(
      train_args("fp16",
                 "training.steps=40 training.precision=fp16 training.device=cuda "
                 "training.loss_scale=1099511627776"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::istringstream lines(testing::read_text(scratch_ / "fp16" / "metrics.jsonl"));
  int skipped = 0;
  double first_scale = 0.0, last_scale = 0.0, first_loss = 0.0, last_loss = 0.0;
  for (std::string line; std::getline(lines, line);) {
    const auto record = parse_json(line, "metrics.jsonl");
    skipped += record.at("step_skipped").get<bool>() ? 1 : 0;
    last_scale = record.at("loss_scale").get<double>();
    last_loss = record.at("loss").get<double>();
    if (first_scale == 0.0) {
      first_scale = last_scale;
      first_loss = last_loss;
    }
  }
  std::cout << "[fp16] skipped " << skipped << " steps, scale " << first_scale << " -> "
            << last_scale << ", loss " << first_loss << " -> " << last_loss << std::endl;
  EXPECT_GT(skipped, 0);
  EXPECT_LT(skipped, 40);
  EXPECT_LT(last_scale, first_scale);
  EXPECT_TRUE(std::isfinite(last_loss));
  EXPECT_LT(last_loss, first_loss);
}

TEST_F(GpuTraining, Fp16OnTheCpuTrainsOrSaysWhyNot) {
  const auto result =
      testing::run_lctrain(train_args("fp16-cpu", "training.precision=fp16 training.device=cpu"));
  if (result.exit_code != 0) {
    // LibTorch 1.13 has no fp16 matmul on CPUs.
    EXPECT_NE(result.output.find("cannot multiply fp16 matrices on cpu"), std::string::npos)
        << result.output;
    return;
  }
  for (const double loss : losses("fp16-cpu")) EXPECT_TRUE(std::isfinite(loss));
}

TEST_F(GpuTraining, AskingForCudaWithoutAGpuIsAClearError) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has a GPU";
  const auto result = testing::run_lctrain(train_args("none", "training.device=cuda"));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("training.device=cuda"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace lctrain
