// `torchrun --no-python ... lctrain train` as users launch it, with the real torchrun (Debian's
// python3-torch, installed by scripts/setup.sh): its agent already serves the rendezvous store on
// MASTER_PORT, so the ranks must join that store rather than bind the port themselves. Two Gloo
// ranks train as they do under `lctrain launch`, a torchrun job resumes exactly, and a group
// torchrun restarts after a failure rendezvouses afresh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "distributed/launcher.h"
#include "support/training_job.h"

namespace lctrain {
namespace {

using testing::CommandResult;
using testing::contains;

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

class Torchrun : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(torchrun_.c_str(), X_OK), 0)
        << torchrun_ << " is missing: scripts/setup.sh installs it (Debian's python3-torch)";
  }

  // Two ranks under torchrun. Spelled as both Debian's 1.13 and 2.x accept it; `--redirects 2
  // --tee 2` because 1.13's default (0) fails on Python 3.11 (its Std flag lookup misses 0).
  // `program` (lctrain by default) is what torchrun starts; `options` go to torchrun.
  CommandResult run_torchrun(const std::string& out, const std::string& extra = "",
                             const std::string& options = "",
                             const std::string& program = testing::lctrain_binary()) const {
    const int port = dist::find_free_port("127.0.0.1");
    return testing::run_command(
        testing::quoted(torchrun_) +
        " --nnodes 1 --nproc_per_node 2 --master_addr 127.0.0.1 --master_port " +
        std::to_string(port) + " --redirects 2 --tee 2 --log_dir " +
        testing::quoted(job_.out(out + "-logs")) + " " + options + " --no_python " +
        testing::quoted(program) + " " + job_.train_arguments(out, extra));
  }

  // Two runs took the same steps to the same weights, bit for bit.
  void expect_same_run(const std::string& out, const std::string& reference, size_t steps) const {
    const auto expected = job_.losses(reference);
    ASSERT_EQ(expected.size(), steps);
    EXPECT_EQ(job_.losses(out), expected);
    EXPECT_TRUE(testing::tensors_equal(job_.final_tensors(out), job_.final_tensors(reference)));
  }

  const std::string torchrun_ = torchrun_path();
  testing::ScratchDir scratch_;
  testing::TrainingJob job_{scratch_};
};

TEST_F(Torchrun, TwoRanksTrainAsUnderLctrainLaunch) {
  const std::string steps = "training.steps=6";
  const auto launched = job_.run("launch", 2, steps);
  ASSERT_EQ(launched.exit_code, 0) << launched.output;
  const auto result = run_torchrun("torchrun", steps);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "(torchrun's store)")) << result.output;
  EXPECT_TRUE(contains(result.output, "on 2 rank(s) (gloo)")) << result.output;
  expect_same_run("torchrun", "launch", 6);
}

TEST_F(Torchrun, AJobStoppedAfterACheckpointResumesExactly) {
  const auto whole = run_torchrun("whole", "training.steps=10");
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  // The first job ends at the step-5 checkpoint; the second resumes it to step 10.
  const auto first = run_torchrun("parts", "training.steps=5");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto second = run_torchrun("parts", "training.steps=10");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_TRUE(contains(second.output, "resum")) << second.output;
  expect_same_run("parts", "whole", 10);
}

// torchrun restarts the whole group when a rank fails (--max_restarts). The new attempt must not
// read what the failed one left in torchrun's store (rank 0's old Gloo address, say): each attempt
// rendezvouses under its own keys (TORCHELASTIC_RESTART_COUNT).
TEST_F(Torchrun, ARestartedAttemptRendezvousesAfresh) {
  // Rank 1 of the first attempt dies once rank 0 has registered in the store; in the second,
  // rank 0 comes late, so that rank 1 would find rank 0's stale registration first.
  const auto worker = job_.out("flaky-worker.sh");
  testing::write_text(worker, R"(#!/bin/sh
if [ "$TORCHELASTIC_RESTART_COUNT" = 0 ] && [ "$RANK" = 1 ]; then
  sleep 3; echo 'rank 1 fails on purpose' >&2; exit 3
fi
if [ "$TORCHELASTIC_RESTART_COUNT" = 1 ] && [ "$RANK" = 0 ]; then sleep 3; fi
exec )" + testing::quoted(testing::lctrain_binary()) +
                                  " \"$@\"\n");
  std::filesystem::permissions(worker, std::filesystem::perms::owner_exec,
                               std::filesystem::perm_options::add);
  const auto result = run_torchrun("restarted", "training.steps=3 distributed.timeout_seconds=30",
                                   "--max_restarts 1 --monitor_interval 1", worker.string());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "rank 1 fails on purpose")) << result.output;
  EXPECT_EQ(job_.losses("restarted").size(), 3u);
}

}  // namespace
}  // namespace lctrain
