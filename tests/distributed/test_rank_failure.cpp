// A training rank killed mid-run: `lctrain launch` exits non-zero promptly, names the rank, and
// leaves no worker behind (the survivors are stopped instead of waiting on a dead peer).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "support/test_support.h"

namespace lctrain {
namespace {

using testing::quoted;
using testing::ScratchDir;
using testing::write_text;

// PIDs of processes whose command line mentions `marker` and whose environment has `variable`.
std::vector<pid_t> processes_with(const std::string& marker, const std::string& variable) {
  std::vector<pid_t> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string command_line = testing::read_text(entry.path() / "cmdline");
    const std::string environment = testing::read_text(entry.path() / "environ");
    if (command_line.find(marker) == std::string::npos) continue;
    if (!variable.empty() &&
        environment.find(std::string("\0", 1) + variable + '\0') == std::string::npos &&
        environment.rfind(variable + '\0', 0) != 0) {
      continue;
    }
    found.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return found;
}

TEST(RankFailure, KilledTrainingRankStopsTheJob) {
  ScratchDir scratch;
  write_text(scratch / "model.json",
             R"({"vocab_size": 40, "hidden_size": 32, "intermediate_size": 48,
                 "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 8})");
  std::string tokens;
  for (int i = 0; i < 2000; ++i) tokens += std::to_string((i * 7) % 40) + " ";
  write_text(scratch / "tokens.txt", tokens);
  const auto out = scratch / "unique-rank-failure-run";
  write_text(scratch / "run.yaml", "model: {config: " + (scratch / "model.json").string() +
                                       "}\ncontext: {target_length: 32}\ndata: {path: " +
                                       (scratch / "tokens.txt").string() +
                                       "}\ntraining: {steps: 1000000, precision: fp32, device: "
                                       "cpu}\ndistributed: {timeout_seconds: 30}\n"
                                       "output: {dir: " +
                                       out.string() + "}\n");
  const auto log = scratch / "launch.log";
  // The output folder is given on the command line so that the workers can be found by it.
  const std::string launch = quoted(testing::lctrain_binary()) +
                             " launch --nproc-per-node 2 --kill-timeout 5 -- train --config " +
                             quoted(scratch / "run.yaml") + " output.dir=" + out.string();
  // The launcher runs in the background; its exit status is written when it ends.
  std::thread launcher([&] {
    testing::run_command(launch + " > " + quoted(log) + " 2>&1; echo $? > " +
                         quoted(scratch / "status"));
  });
  // Wait until training is under way (metrics appear), then kill rank 1 outright.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!std::filesystem::exists(out / "metrics.jsonl") &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto rank_one = processes_with("unique-rank-failure-run", "RANK=1");
  EXPECT_EQ(rank_one.size(), 1u) << testing::read_text(log);
  const auto killed_at = std::chrono::steady_clock::now();
  if (rank_one.size() == 1) {
    kill(rank_one[0], SIGKILL);
  } else {
    // Never leave the job running when the test cannot do its part.
    for (const pid_t pid : processes_with("unique-rank-failure-run", "")) kill(pid, SIGKILL);
  }
  launcher.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();

  const std::string output = testing::read_text(log);
  EXPECT_NE(std::stoi(testing::read_text(scratch / "status")), 0) << output;
  EXPECT_NE(output.find("rank 1"), std::string::npos) << output;
  EXPECT_LT(seconds, 20.0) << "the launcher took too long to stop the job";
  EXPECT_TRUE(processes_with("unique-rank-failure-run", "").empty()) << "a worker survived";
}

}  // namespace
}  // namespace lctrain
