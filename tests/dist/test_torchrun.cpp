// `torchrun --no-python ... lctrain train` as users launch it, with the real torchrun (Debian's
// python3-torch, installed by scripts/setup.sh): its agent already serves the rendezvous store on
// MASTER_PORT, so the ranks must join that store rather than bind the port themselves. Two Gloo
// ranks train as they do under `lctrain launch`, and a torchrun job resumes exactly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "dist/launcher.h"
#include "support/test_support.h"

namespace lctrain {
namespace {

using testing::run_command;
using testing::ScratchDir;
using testing::write_text;

// LCTRAIN_TORCHRUN, else the first torchrun on PATH, else Debian's.
std::string torchrun_path() {
  if (const char* chosen = std::getenv("LCTRAIN_TORCHRUN")) return chosen;
  if (const char* path = std::getenv("PATH")) {
    std::istringstream folders(path);
    std::string folder;
    while (std::getline(folders, folder, ':')) {
      const auto candidate = std::filesystem::path(folder) / "torchrun";
      if (!folder.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
  }
  return "/usr/bin/torchrun";
}

std::vector<double> losses_of(const std::filesystem::path& out) {
  std::vector<double> losses;
  std::ifstream metrics(out / "metrics.jsonl");
  std::string line;
  while (std::getline(metrics, line)) losses.push_back(nlohmann::json::parse(line)["loss"]);
  return losses;
}

class Torchrun : public ::testing::Test {
 protected:
  void SetUp() override {
    torchrun_ = torchrun_path();
    ASSERT_EQ(::access(torchrun_.c_str(), X_OK), 0)
        << torchrun_ << " is missing: scripts/setup.sh installs it (Debian's python3-torch)";
    write_text(scratch_ / "model.json", nlohmann::json{{"vocab_size", 61},
                                                       {"hidden_size", 32},
                                                       {"intermediate_size", 48},
                                                       {"num_hidden_layers", 2},
                                                       {"num_attention_heads", 4},
                                                       {"num_key_value_heads", 2},
                                                       {"max_position_embeddings", 16}}
                                            .dump());
    std::mt19937 generator(11);
    std::ostringstream tokens;
    for (int i = 0; i < 3000; ++i) tokens << generator() % 61 << (i % 20 == 19 ? '\n' : ' ');
    write_text(scratch_ / "tokens.txt", tokens.str());
    write_text(scratch_ / "run.yaml",
               "model:\n  config: " + (scratch_ / "model.json").string() +
                   "\n  init_seed: 3\n"
                   "context:\n  target_length: 32\n"
                   "data:\n  path: " +
                   (scratch_ / "tokens.txt").string() +
                   "\n"
                   "training:\n  steps: 6\n  micro_batch_size: 2\n  precision: fp32\n"
                   "  device: cpu\n"
                   "optimizer:\n  lr: 0.003\n"
                   "schedule:\n  warmup_steps: 2\n"
                   "output:\n  checkpoint_every: 3\n"
                   "distributed:\n  timeout_seconds: 60\n");
  }

  std::string train_arguments(const std::string& out, const std::string& extra = "") const {
    return " train --config " + testing::quoted(scratch_ / "run.yaml") +
           " output.dir=" + testing::quoted(scratch_ / out) + " " + extra;
  }

  // Two ranks under torchrun. Spelled as both Debian's 1.13 and 2.x accept it; `--redirects 2
  // --tee 2` because 1.13's default (0) fails on Python 3.11 (its Std flag lookup misses 0).
  // USE_LIBUV=0: torchrun 2.x serves its store with libuv unless told otherwise, which Debian
  // 13's torch is built without; the classic store is in every build and speaks the same
  // protocol to lctrain's ranks.
  testing::CommandResult run_torchrun(const std::string& out, const std::string& extra = "") {
    const int port = dist::find_free_port("127.0.0.1");
    return run_command("USE_LIBUV=0 " + testing::quoted(torchrun_) +
                       " --nnodes 1 --nproc_per_node 2 --master_addr " +
                       "127.0.0.1 --master_port " + std::to_string(port) +
                       " --redirects 2 --tee 2 --log_dir " +
                       testing::quoted(scratch_ / (out + "-logs")) + " --no_python " +
                       testing::quoted(testing::lctrain_binary()) + train_arguments(out, extra));
  }

  ScratchDir scratch_;
  std::string torchrun_;
};

TEST_F(Torchrun, TwoRanksTrainAsUnderLctrainLaunch) {
  const auto launched = run_command(testing::quoted(testing::lctrain_binary()) +
                                    " launch --nproc-per-node 2 --" + train_arguments("launch"));
  ASSERT_EQ(launched.exit_code, 0) << launched.output;
  const auto result = run_torchrun("torchrun");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(testing::contains(result.output, "(torchrun's store)")) << result.output;
  EXPECT_TRUE(testing::contains(result.output, "on 2 rank(s) (gloo)")) << result.output;

  const auto expected = losses_of(scratch_ / "launch");
  const auto actual = losses_of(scratch_ / "torchrun");
  ASSERT_EQ(expected.size(), 6u);
  ASSERT_EQ(actual.size(), 6u);
  for (size_t step = 0; step < expected.size(); ++step) {
    EXPECT_NEAR(actual[step], expected[step], 1e-9 * std::abs(expected[step])) << step + 1;
  }
  EXPECT_TRUE(std::filesystem::exists(scratch_ / "torchrun" / "final" / "config.json"));
}

TEST_F(Torchrun, AJobStoppedAfterACheckpointResumesExactly) {
  const auto whole = run_torchrun("whole");
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  // The first job ends at the step-3 checkpoint; the second resumes it to step 6.
  const auto first = run_torchrun("parts", "training.steps=3");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto second = run_torchrun("parts");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_TRUE(testing::contains(second.output, "resum")) << second.output;

  const auto expected = losses_of(scratch_ / "whole");
  const auto actual = losses_of(scratch_ / "parts");
  ASSERT_EQ(expected.size(), 6u);
  ASSERT_EQ(actual.size(), 6u) << "metrics.jsonl holds each step once";
  for (size_t step = 0; step < expected.size(); ++step) {
    EXPECT_NEAR(actual[step], expected[step], 1e-9 * std::abs(expected[step])) << step + 1;
  }
}

}  // namespace
}  // namespace lctrain
