// `lctrain train` as a user runs it: the output folder it leaves (effective config, metrics, the
// extended model), the progress bar on a terminal only, and clean errors for bad recipes or data.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "io/hf_model_dir.h"
#include "support/test_support.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

using testing::quoted;
using testing::run_command;
using testing::ScratchDir;
using testing::write_text;

class TrainCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    write_text(scratch_ / "model.json",
               R"({"vocab_size": 40, "hidden_size": 32, "intermediate_size": 48,
                   "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 8})");
    std::string tokens;
    for (int i = 0; i < 600; ++i) tokens += std::to_string((i * 7) % 40) + " ";
    write_text(scratch_ / "tokens.txt", tokens);
    write_text(scratch_ / "run.yaml", "model: {config: " + (scratch_ / "model.json").string() +
                                          "}\ncontext: {target_length: 32}\n"
                                          "data: {path: " +
                                          (scratch_ / "tokens.txt").string() +
                                          "}\ntraining: {steps: 3, precision: fp32}\n"
                                          "output: {dir: " +
                                          (scratch_ / "out").string() + "}\n");
  }
  std::string train(const std::string& extra = "") const {
    return quoted(testing::lctrain_binary()) + " train --config " + quoted(scratch_ / "run.yaml") +
           " " + extra;
  }
  ScratchDir scratch_;
};

TEST_F(TrainCommand, LeavesConfigMetricsAndTheExtendedModel) {
  const auto result = run_command(train());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(testing::read_text(scratch_ / "out" / "config.yaml").find("target_length: 32"),
            std::string::npos);
  std::ifstream metrics(scratch_ / "out" / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line); ++lines) {
    const auto record = nlohmann::json::parse(line);
    EXPECT_TRUE(record.contains("loss") && record.contains("lr") && record.contains("grad_norm"));
  }
  EXPECT_EQ(lines, 3);
  // The final model is a Hugging Face folder with the window and scaling of the run: 8 -> 32.
  const LlamaConfig config = io::load_config(scratch_ / "out" / "final");
  EXPECT_EQ(config.max_position_embeddings, 32);
  EXPECT_EQ(config.rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(config.rope_scaling.factor, 4.0);
  // No progress bar when stderr is not a terminal.
  EXPECT_EQ(result.output.find('\r'), std::string::npos);
}

TEST_F(TrainCommand, DynamicLossScalingSkipsOverflowingStepsThenTrains) {
  // The fp16 machinery, driven on the CPU in fp32: 2^140 is inf as a float, so the first steps
  // overflow and are skipped, halving the scale each time, until steps go through.
  const auto result =
      run_command(train("training.steps=30 training.loss_scaling=dynamic "
                        "training.loss_scale=1.3937965749081639e+42 "
                        "optimizer.lr=0.01 output.checkpoint_every=-1"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("gradients overflowed"), std::string::npos) << result.output;
  std::ifstream metrics(scratch_ / "out" / "metrics.jsonl");
  int skipped = 0;
  std::vector<double> scales, losses;
  for (std::string line; std::getline(metrics, line);) {
    const auto record = nlohmann::json::parse(line);
    skipped += record.at("step_skipped").get<bool>() ? 1 : 0;
    scales.push_back(record.at("loss_scale").get<double>());
    losses.push_back(record.at("loss").get<double>());
  }
  ASSERT_EQ(scales.size(), 30u);
  EXPECT_GE(skipped, 13);  // 2^140 ... 2^128 are all inf in fp32
  EXPECT_LT(skipped, 30);
  EXPECT_DOUBLE_EQ(scales[1], scales[0] / 2);
  EXPECT_LT(losses.back(), losses.front());
}

TEST_F(TrainCommand, DrawsAProgressBarOnATerminal) {
  // script(1) gives the command a pseudo-terminal, as an interactive user has.
  const auto result = run_command("script -qec " + quoted(train()) + " /dev/null");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("] 3/3 loss"), std::string::npos) << result.output;
}

TEST_F(TrainCommand, BadRecipesAndDataEndInOneClearError) {
  const auto expect_error = [&](const std::string& extra, const std::string& needle) {
    const auto result = run_command(train(extra));
    EXPECT_EQ(result.exit_code, 1) << extra << "\n" << result.output;
    EXPECT_NE(result.output.find("lctrain: error:"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find(needle), std::string::npos) << extra << "\n" << result.output;
  };
  expect_error("training.stepz=3", "stepz");
  expect_error("training.steps=abc", "training.steps");
  expect_error("data.path=" + (scratch_ / "absent.txt").string(), "absent.txt");
  write_text(scratch_ / "big.txt",
             "1 2 3 99 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 "
             "24 25 26 27 28 29 30 31 32 33 34");
  expect_error("data.path=" + (scratch_ / "big.txt").string(), "vocabulary");
  // fp16 on this CPU: LibTorch 1.13 cannot multiply fp16 matrices there, which must be said at
  // start-up; 2.x can, and then the run trains.
  bool fp16_matmul_on_cpu = true;
  try {
    const auto probe = torch::ones({2, 2}, torch::kHalf);
    (void)torch::mm(probe, probe);
  } catch (const c10::Error&) {
    fp16_matmul_on_cpu = false;
  }
  if (fp16_matmul_on_cpu) {
    const auto result = run_command(train("training.precision=fp16"));
    EXPECT_EQ(result.exit_code, 0) << result.output;
    EXPECT_NE(result.output.find("fp16"), std::string::npos) << result.output;
  } else {
    expect_error("training.precision=fp16", "cannot multiply fp16 matrices on cpu");
  }
}

TEST_F(TrainCommand, ProfilesStepsIntoATraceAndABreakdown) {
  // A 3-step run: the default skip of 2 moves back so that 3 steps are still profiled.
  const auto trace = scratch_ / "trace.json";
  const auto result = run_command("LCTRAIN_PROFILE=" + quoted(trace) + " " + train());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("profiling steps 1 to 3"), std::string::npos) << result.output;
  const auto summary = nlohmann::json::parse(testing::read_text(trace.string() + ".summary.json"));
  EXPECT_EQ(summary["timeline"], "host");
  EXPECT_EQ(summary["steps"], 3);
  double total = 0.0;
  for (const auto& [name, value] : summary["category_ms_per_step"].items()) {
    EXPECT_GE(value.get<double>(), 0.0) << name;
    total += value.get<double>();
  }
  EXPECT_NEAR(total, summary["ms_per_step"].get<double>(), 1e-6 * total + 1e-9);
  // Each scope the trainer records shows up: matrix products, attention, the optimizer.
  for (const char* category : {"GEMM", "attention", "optimizer", "elementwise"}) {
    EXPECT_GT(summary["category_ms_per_step"][category].get<double>(), 0.0) << category;
  }
  // The trace itself is summarised the same way by the CLI.
  const auto again = run_command(quoted(testing::lctrain_binary()) + " profile-summary " +
                                 quoted(trace) + " --json");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(nlohmann::json::parse(again.output)["category_ms_per_step"],
            summary["category_ms_per_step"]);
}

TEST_F(TrainCommand, ABadProfileSettingIsRefusedBeforeTheRunStarts) {
  const auto expect_refused = [&](const std::string& environment, const std::string& needle) {
    const auto result = run_command(environment + " " + train());
    EXPECT_EQ(result.exit_code, 1) << environment << "\n" << result.output;
    EXPECT_NE(result.output.find(needle), std::string::npos) << environment << "\n"
                                                             << result.output;
    EXPECT_FALSE(std::filesystem::exists(scratch_ / "out")) << environment;
  };
  expect_refused("LCTRAIN_PROFILE=" + quoted(scratch_ / "absent" / "trace.json"),
                 "LCTRAIN_PROFILE=" + (scratch_ / "absent" / "trace.json").string());
  expect_refused("LCTRAIN_PROFILE=" + quoted(scratch_.path()), "is a folder");
  expect_refused("LCTRAIN_PROFILE=" + quoted(scratch_ / "t.json") + " LCTRAIN_PROFILE_STEPS=abc",
                 "LCTRAIN_PROFILE_STEPS='abc'");
  expect_refused("LCTRAIN_PROFILE=" + quoted(scratch_ / "t.json") + " LCTRAIN_PROFILE_STEPS=0",
                 "LCTRAIN_PROFILE_STEPS='0'");
}

TEST_F(TrainCommand, AFolderGivenAsConfigIsRefused) {
  std::filesystem::create_directories(scratch_ / "recipes");
  const auto result = run_command(quoted(testing::lctrain_binary()) + " train --config " +
                                  quoted(scratch_ / "recipes"));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find((scratch_ / "recipes").string() + " is a folder"), std::string::npos)
      << result.output;
  EXPECT_FALSE(std::filesystem::exists(scratch_ / "out"));
}

}  // namespace
}  // namespace lctrain
