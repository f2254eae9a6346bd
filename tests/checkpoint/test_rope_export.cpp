// A run fine-tuned with any RoPE scaling exports the RoPE it was trained with: `final/` and
// `lctrain export` give the same logits as the trained weights under the training-time RoPE
// (the base window L with factor L'/L), for linear, dynamic NTK, YaRN and LLaMA 3.1.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "io/safetensors.h"
#include "support/forward_logits.h"
#include "support/test_support.h"
#include "support/training_job.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::forward_logits;
using testing::quoted;
using testing::run_lctrain;
using testing::ScratchDir;
using testing::write_text;

constexpr int64_t kOriginal = 32;  // the parity fixture's max_position_embeddings
constexpr int64_t kTarget = 96;

// The training-time RoPE written the way the trainer applies it: the base's window L in
// max_position_embeddings and factor L'/L relative to it.
nlohmann::json training_time_rope(const std::string& scaling) {
  nlohmann::json rope = {{"rope_type", scaling}, {"factor", double(kTarget) / double(kOriginal)}};
  if (scaling == "llama3") {
    rope["low_freq_factor"] = 1.0;
    rope["high_freq_factor"] = 4.0;
    rope["original_max_position_embeddings"] = kOriginal;
  }
  return rope;
}

class RopeExport : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string tokens;
    for (int i = 0; i < 2000; ++i) tokens += std::to_string((i * 37 + i / 7) % 257) + " ";
    write_text(scratch_ / "tokens.txt", tokens);
    std::string ids;
    for (int i = 0; i < kTarget; ++i) ids += std::to_string((i * 11 + 3) % 257) + " ";
    write_text(scratch_ / "ids.txt", ids);
  }
  // Fine-tunes the parity fixture from 32 to 96 tokens with `scaling`, fp32.
  CommandResult train(const std::string& out, int64_t steps, const std::string& extra = "") {
    write_text(scratch_ / "run.yaml",
               "model: {path: " + testing::fixture_dir("tiny-llama-parity").string() +
                   "}\ncontext: {target_length: " + std::to_string(kTarget) + ", scaling: " +
                   GetParam() + "}\ndata: {path: " + (scratch_ / "tokens.txt").string() +
                   "}\ntraining: {precision: fp32, device: cpu}\n"
                   "optimizer: {lr: 0.001}\nschedule: {warmup_steps: 0}\n");
    return run_lctrain("train --config " + quoted(scratch_ / "run.yaml") +
                       " output.dir=" + quoted(scratch_ / out) +
                       " training.steps=" + std::to_string(steps) + " " + extra);
  }
  // A copy of `model` whose config.json states the training-time RoPE instead.
  fs::path as_trained(const fs::path& model) {
    const fs::path copy = scratch_ / (model.filename().string() + "-as-trained");
    fs::create_directories(copy);
    for (const auto& entry : fs::directory_iterator(model)) {
      if (entry.path().filename() != "config.json")
        fs::copy(entry.path(), copy / entry.path().filename());
    }
    nlohmann::json config = read_json_file(model / "config.json");
    config["max_position_embeddings"] = kOriginal;
    config["rope_scaling"] = training_time_rope(GetParam());
    write_text(copy / "config.json", config.dump(1));
    return copy;
  }
  double max_difference(const fs::path& a, const fs::path& b) {
    const auto left = forward_logits(a, scratch_ / "ids.txt", scratch_ / "a.safetensors");
    const auto right = forward_logits(b, scratch_ / "ids.txt", scratch_ / "b.safetensors");
    return (left - right).abs().max().item<double>();
  }
  ScratchDir scratch_;
};

TEST_P(RopeExport, FinalAndExportRunTheTrainingTimeRope) {
  const CommandResult trained = train("run", 4);
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  const fs::path final_dir = scratch_ / "run" / "final";
  const fs::path reference = as_trained(final_dir);
  EXPECT_LE(max_difference(final_dir, reference), 1e-5);

  const fs::path exported = scratch_ / "exported";
  const CommandResult exporting = run_lctrain("export --checkpoint " + quoted(scratch_ / "run") +
                                              " --out " + quoted(exported) + " --dtype f32");
  ASSERT_EQ(exporting.exit_code, 0) << exporting.output;
  EXPECT_LE(max_difference(exported, reference), 1e-5);

  // inspect names both windows whatever the keys' spelling for this scaling.
  const CommandResult inspected = run_lctrain("inspect " + quoted(exported));
  ASSERT_EQ(inspected.exit_code, 0) << inspected.output;
  EXPECT_TRUE(testing::contains(inspected.output, "trained window 96 tokens, original window 32"))
      << inspected.output;
}

INSTANTIATE_TEST_SUITE_P(EveryScaling, RopeExport,
                         ::testing::Values("linear", "dynamic", "yarn", "llama3"));

class YarnRun : public RopeExport {};

TEST_P(YarnRun, ResumeAndCheckpointExportKeepTheScaling) {
  // Two steps, a checkpoint, two more after a resume: the same weights as four straight steps.
  ASSERT_EQ(train("straight", 4).exit_code, 0);
  ASSERT_EQ(train("resumed", 2).exit_code, 0);
  const CommandResult resumed = train("resumed", 4);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  ASSERT_TRUE(testing::contains(resumed.output, "resumed from")) << resumed.output;
  EXPECT_EQ(max_difference(scratch_ / "straight" / "final", scratch_ / "resumed" / "final"), 0.0);

  const auto config = read_json_file(scratch_ / "resumed" / "final" / "config.json");
  EXPECT_EQ(config.at("max_position_embeddings"), kTarget);
  EXPECT_EQ(config.at("rope_scaling").at("rope_type"), "yarn");
  EXPECT_EQ(config.at("rope_scaling").at("original_max_position_embeddings"), kOriginal);
  EXPECT_DOUBLE_EQ(config.at("rope_scaling").at("factor").get<double>(), 3.0);

  // The step-2 checkpoint, exported, runs the training-time RoPE too.
  const fs::path exported = scratch_ / "step2";
  const CommandResult exporting = run_lctrain(
      "export --checkpoint " + quoted(scratch_ / "resumed" / "checkpoints" / "step-00000002") +
      " --out " + quoted(exported) + " --dtype f32");
  ASSERT_EQ(exporting.exit_code, 0) << exporting.output;
  EXPECT_LE(max_difference(exported, as_trained(exported)), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Yarn, YarnRun, ::testing::Values("yarn"));

}  // namespace
}  // namespace lctrain
