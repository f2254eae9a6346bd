// Exact resume as a user meets it: a job stopped (by its step budget, SIGTERM, SIGKILL in the
// middle of a checkpoint, or a damaged file) and started again continues the run that would have
// happened, on the same or another number of ranks.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "support/training_job.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::quoted;
using testing::read_text;
using testing::run_command;
using testing::ScratchDir;
using testing::TrainingJob;

using testing::contains;

void expect_same_losses(const std::map<int64_t, double>& expected,
                        const std::map<int64_t, double>& actual, int64_t first, int64_t last,
                        double relative_tolerance) {
  for (int64_t step = first; step <= last; ++step) {
    ASSERT_TRUE(expected.count(step) && actual.count(step)) << "step " << step << " not logged";
    if (relative_tolerance == 0.0) {
      EXPECT_EQ(expected.at(step), actual.at(step)) << "step " << step;
    } else {
      EXPECT_NEAR(expected.at(step), actual.at(step), relative_tolerance * expected.at(step))
          << "step " << step;
    }
  }
}

// Waits up to `seconds` for `ready`; false on timeout.
template <typename Ready>
bool wait_for(Ready ready, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

size_t line_count(const fs::path& path) {
  std::ifstream in(path);
  size_t count = 0;
  for (std::string line; std::getline(in, line);) ++count;
  return count;
}

class Resume : public ::testing::Test {
 protected:
  ScratchDir scratch_;
  TrainingJob job_{scratch_};
};

TEST_F(Resume, StoppedAndResumedRunEqualsTheStraightRunBitForBit) {
  ASSERT_EQ(job_.run("straight", 2).exit_code, 0);
  ASSERT_EQ(job_.run("split", 2, "training.steps=10").exit_code, 0);
  const CommandResult second = job_.run("split", 2);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_TRUE(
      contains(second.output,
               "resumed from " + (job_.out("split") / "checkpoints" / "step-00000010").string()))
      << second.output;
  // The second run computed only steps 11-20.
  EXPECT_FALSE(contains(second.output, "step 10/20 ")) << second.output;
  EXPECT_TRUE(contains(second.output, "step 11/20 ")) << second.output;

  const auto straight = job_.losses("straight");
  ASSERT_EQ(straight.size(), 20u);
  expect_same_losses(straight, job_.losses("split"), 1, 20, 0.0);
  EXPECT_TRUE(testing::tensors_equal(job_.final_tensors("straight"), job_.final_tensors("split")));
}

TEST_F(Resume, LossScalerStateAndSkippedStepsResumeExactly) {
  // 2^130 is inf as a float: the first steps overflow and are skipped, so the optimizer has taken
  // fewer updates than the job has steps, and the scale has backed off; both must survive.
  const std::string scaling =
      "training.loss_scaling=dynamic training.loss_scale=1.361129467683754e+39 ";
  ASSERT_EQ(job_.run("straight", 1, scaling).exit_code, 0);
  ASSERT_EQ(job_.run("split", 1, scaling + "training.steps=10").exit_code, 0);
  const auto manifest =
      read_json_file(job_.out("split") / "checkpoints" / "step-00000010" / "manifest.json");
  EXPECT_LT(manifest.at("optimizer").at("steps").get<int64_t>(), 10);
  EXPECT_LT(manifest.at("grad_scaler").at("scale").get<double>(), 1.361129467683754e+39);
  const CommandResult resumed = job_.run("split", 1, scaling);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  expect_same_losses(job_.losses("straight"), job_.losses("split"), 1, 20, 0.0);
  EXPECT_TRUE(testing::tensors_equal(job_.final_tensors("straight"), job_.final_tensors("split")));
}

TEST_F(Resume, ACheckpointOfTwoRanksContinuesOnOneAndOnFour) {
  ASSERT_EQ(job_.run("straight", 2).exit_code, 0);
  ASSERT_EQ(job_.run("w2", 2, "training.steps=10").exit_code, 0);
  const fs::path checkpoint = job_.out("w2") / "checkpoints" / "step-00000010";
  // The same global batch of 4 sequences: 1 rank x 2 micro-steps x 2, or 4 ranks x 1.
  const CommandResult one =
      job_.run("w1", 1, "--resume " + quoted(checkpoint) + " training.gradient_accumulation=2");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_TRUE(contains(one.output, "resharding 2 -> 1 ranks")) << one.output;
  const CommandResult four =
      job_.run("w4", 4, "--resume " + quoted(checkpoint) + " training.micro_batch_size=1");
  ASSERT_EQ(four.exit_code, 0) << four.output;

  const auto straight = job_.losses("straight");
  // Sums in another order: fp32 rounding, not bit equality.
  expect_same_losses(straight, job_.losses("w1"), 11, 20, 1e-5);
  expect_same_losses(straight, job_.losses("w4"), 11, 20, 1e-5);
  const auto reference = job_.final_tensors("straight");
  for (const char* out : {"w1", "w4"}) {
    for (const auto& [name, tensor] : job_.final_tensors(out)) {
      EXPECT_TRUE(torch::allclose(tensor, reference.at(name), 1e-4, 1e-6)) << out << " " << name;
    }
  }
}

TEST_F(Resume, SigtermSavesACheckpointExitsZeroAndTheRunContinuesExactly) {
  const fs::path pid_file = scratch_ / "launcher.pid";
  const fs::path status_file = scratch_ / "status";
  // Background job; its launcher's pid is what a scheduler would signal.
  run_command(
      "(sh -c " +
      quoted("echo $$ > " + quoted(pid_file) + "; exec " +
             job_.command("signalled", 2, "training.steps=100000 output.checkpoint_every=-1")) +
      " > " + quoted(scratch_ / "signalled.log") + " 2>&1; echo $? > " + quoted(status_file) +
      ") > /dev/null 2>&1 &");
  const fs::path metrics = job_.out("signalled") / "metrics.jsonl";
  ASSERT_TRUE(wait_for([&] { return fs::exists(metrics) && line_count(metrics) >= 4; }, 60));
  ASSERT_EQ(run_command("kill -TERM " + read_text(pid_file)).exit_code, 0);
  ASSERT_TRUE(
      wait_for([&] { return fs::exists(status_file) && !read_text(status_file).empty(); }, 60));
  const std::string log = read_text(scratch_ / "signalled.log");
  EXPECT_EQ(std::stoi(read_text(status_file)), 0) << log;
  EXPECT_TRUE(contains(log, "stopped by a signal after step")) << log;

  const auto stopped_at = job_.losses("signalled").rbegin()->first;
  const fs::path saved =
      job_.out("signalled") / "checkpoints" / fmt::format("step-{:08d}", stopped_at);
  ASSERT_TRUE(fs::exists(saved / "manifest.json")) << log;
  const std::string steps = "training.steps=" + std::to_string(stopped_at + 3);
  const CommandResult resumed = job_.run("signalled", 2, steps);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  ASSERT_EQ(job_.run("reference", 2, steps).exit_code, 0);
  expect_same_losses(job_.losses("reference"), job_.losses("signalled"), 1, stopped_at + 3, 0.0);
  EXPECT_TRUE(
      testing::tensors_equal(job_.final_tensors("reference"), job_.final_tensors("signalled")));
}

TEST_F(Resume, ADoubleCtrlCToASingleProcessTrainStillSavesACheckpoint) {
  const fs::path pid_file = scratch_ / "train.pid";
  const fs::path status_file = scratch_ / "status";
  // `lctrain train` itself, no launcher: the process a user's terminal interrupts.
  run_command("(sh -c " +
              quoted("echo $$ > " + quoted(pid_file) + "; exec " +
                     quoted(testing::lctrain_binary()) + " " +
                     job_.train_arguments("interrupted",
                                          "training.steps=100000 output.checkpoint_every=-1 "
                                          "training.gradient_accumulation=50")) +
              " > " + quoted(scratch_ / "interrupted.log") + " 2>&1; echo $? > " +
              quoted(status_file) + ") > /dev/null 2>&1 &");
  const fs::path metrics = job_.out("interrupted") / "metrics.jsonl";
  ASSERT_TRUE(wait_for([&] { return fs::exists(metrics) && line_count(metrics) >= 2; }, 60));
  std::string pid = read_text(pid_file);
  pid.erase(pid.find_last_not_of(" \n") + 1);
  // Slow steps (50 micro-batches): both interrupts land in the same step, apart enough not to
  // merge into one pending signal.
  ASSERT_EQ(run_command("kill -INT " + pid + " && sleep 0.05 && kill -INT " + pid).exit_code, 0);
  ASSERT_TRUE(
      wait_for([&] { return fs::exists(status_file) && !read_text(status_file).empty(); }, 60));
  const std::string log = read_text(scratch_ / "interrupted.log");
  EXPECT_EQ(std::stoi(read_text(status_file)), 0) << log;
  EXPECT_TRUE(contains(log, "interrupt once more to exit without it")) << log;
  const auto stopped_at = job_.losses("interrupted").rbegin()->first;
  EXPECT_TRUE(fs::exists(job_.out("interrupted") / "checkpoints" /
                         fmt::format("step-{:08d}", stopped_at) / "manifest.json"))
      << log;
}

TEST_F(Resume, KilledWhileWritingACheckpointResumesFromThePreviousOne) {
  const std::string run_name = "killed-" + scratch_.path().filename().string();
  const fs::path root = job_.out(run_name) / "checkpoints";
  // The checkpoint of step 10 stalls after its rank files, before its manifest and rename.
  run_command("(LCTRAIN_TEST_CHECKPOINT_PAUSE_MS=60000 LCTRAIN_TEST_CHECKPOINT_PAUSE_STEP=10 " +
              job_.command(run_name, 2, "training.steps=15") + " > " +
              quoted(scratch_ / "killed.log") + " 2>&1 &) > /dev/null 2>&1");
  const fs::path partial = root / ".tmp-step-00000010";
  ASSERT_TRUE(wait_for(
      [&] {
        return fs::exists(partial / "rank-00000-of-00002.safetensors") &&
               fs::exists(partial / "rank-00001-of-00002.safetensors");
      },
      60))
      << read_text(scratch_ / "killed.log");
  // SIGKILL for the launcher and both ranks at once: no handler runs, nothing is tidied up. (The
  // bracket keeps the pattern from matching the shell that runs pkill itself.)
  const std::string pattern = quoted("[" + run_name.substr(0, 1) + "]" + run_name.substr(1));
  run_command("pkill -KILL -f " + pattern);
  ASSERT_TRUE(wait_for([&] { return run_command("pgrep -f " + pattern).exit_code != 0; }, 30));
  EXPECT_TRUE(fs::exists(root / "step-00000005" / "manifest.json"));
  EXPECT_FALSE(fs::exists(root / "step-00000010"));
  EXPECT_EQ(read_text(root / "latest"), "step-00000005\n");

  const CommandResult resumed = job_.run(run_name, 2, "training.steps=15");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "resumed from " + (root / "step-00000005").string()))
      << resumed.output;
  EXPECT_FALSE(fs::exists(partial)) << "the next save clears what the crash left";
  ASSERT_EQ(job_.run("reference", 2, "training.steps=15").exit_code, 0);
  expect_same_losses(job_.losses("reference"), job_.losses(run_name), 1, 15, 0.0);
  EXPECT_TRUE(
      testing::tensors_equal(job_.final_tensors("reference"), job_.final_tensors(run_name)));
}

// Flips one byte in the middle of a file.
void corrupt(const fs::path& path) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(static_cast<std::streamoff>(fs::file_size(path) / 2));
  const char byte = static_cast<char>(file.get());
  file.seekp(static_cast<std::streamoff>(fs::file_size(path) / 2));
  file.put(static_cast<char>(byte ^ 0x5a));
}

TEST_F(Resume, DamagedCheckpointsAreSkippedWithTheReasonAndNeverLoaded) {
  ASSERT_EQ(job_.run("run", 1, "training.steps=20 output.keep_checkpoints=4").exit_code, 0);
  const fs::path root = job_.out("run") / "checkpoints";
  const std::string shard = "rank-00000-of-00001.safetensors";
  fs::resize_file(root / "step-00000020" / shard,
                  fs::file_size(root / "step-00000020" / shard) / 2);
  corrupt(root / "step-00000015" / shard);
  fs::remove(root / "step-00000010" / "manifest.json");

  const CommandResult inspect = testing::run_lctrain("inspect " + quoted(job_.out("run")));
  EXPECT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_TRUE(contains(inspect.output, "DAMAGED")) << inspect.output;

  // Asked for explicitly, a damaged checkpoint is an error, not a silent substitute.
  const CommandResult explicit_resume =
      job_.run("other", 1, "--resume " + quoted(root / "step-00000015"));
  EXPECT_NE(explicit_resume.exit_code, 0);
  EXPECT_TRUE(contains(explicit_resume.output, "fails its checksum")) << explicit_resume.output;

  const CommandResult resumed = job_.run("run", 1, "training.steps=22");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  for (const char* reason : {"the manifest says", "fails its checksum", "manifest.json"}) {
    EXPECT_TRUE(contains(resumed.output, reason)) << reason << "\n" << resumed.output;
  }
  EXPECT_TRUE(contains(resumed.output, "resumed from " + (root / "step-00000005").string()))
      << resumed.output;

  // When nothing usable is left, the run stops rather than silently starting over.
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.path().filename().string().rfind("step-", 0) == 0) corrupt(entry.path() / shard);
  }
  const CommandResult none = job_.run("run", 1, "training.steps=30");
  EXPECT_NE(none.exit_code, 0);
  EXPECT_TRUE(contains(none.output, "none is usable")) << none.output;
}

}  // namespace
}  // namespace lctrain
