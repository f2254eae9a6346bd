// A diverging run never costs a good checkpoint: non-finite or spiking steps are not applied on
// any rank, too many in a row stop the job loudly without a final model, checkpoints hold only
// finite values, and a checkpoint that cannot be written (file-size limit) leaves the earlier
// ones and `latest` intact.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "checkpoint/checkpoint_store.h"
#include "io/safetensors.h"
#include "support/training_job.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::contains;
using testing::quoted;
using testing::run_command;
using testing::ScratchDir;
using testing::TrainingJob;

// Every tensor of every rank file of every checkpoint under <run>/checkpoints is finite.
::testing::AssertionResult checkpoints_finite(const fs::path& run) {
  for (const fs::path& dir : checkpoint::list(run / "checkpoints")) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() != ".safetensors") continue;
      const auto file = io::SafetensorsFile::open(entry.path());
      for (const auto& name : file.names()) {
        const auto tensor = file.tensor(name);
        if (tensor.is_floating_point() && !torch::isfinite(tensor).all().item<bool>()) {
          return ::testing::AssertionFailure() << entry.path() << " " << name << " not finite";
        }
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// step -> whether it was applied, from metrics.jsonl.
std::map<int64_t, bool> applied_steps(const fs::path& run) {
  std::map<int64_t, bool> result;
  std::istringstream lines(testing::read_text(run / "metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const auto record = parse_json(line, "metrics.jsonl");
    result[record.at("step").get<int64_t>()] = !record.at("step_skipped").get<bool>();
  }
  return result;
}

class DivergingRun : public ::testing::TestWithParam<int> {
 protected:
  ScratchDir scratch_;
  TrainingJob job_{scratch_};
};

TEST_P(DivergingRun, StopsLoudlyAndKeepsTheGoodCheckpoints) {
  const int ranks = GetParam();
  const CommandResult result = job_.run(
      "run", ranks,
      "optimizer.lr=10000 schedule.warmup_steps=0 training.steps=12 output.checkpoint_every=2 "
      "output.keep_checkpoints=2");
  ASSERT_NE(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "the run diverged")) << result.output;
  EXPECT_TRUE(contains(result.output, "optimizer.lr")) << result.output;
  EXPECT_FALSE(fs::exists(job_.out("run") / "final"));
  EXPECT_TRUE(checkpoints_finite(job_.out("run")));
  // The good checkpoints were never rotated away by diverged ones.
  const auto folders = checkpoint::list(job_.out("run") / "checkpoints");
  ASSERT_FALSE(folders.empty()) << result.output;
  EXPECT_EQ(folders.back().filename(), "step-00000002");
  EXPECT_TRUE(contains(result.output, folders.front().string())) << result.output;

  // Resuming from the first good checkpoint with a sane rate works and says what changed.
  const CommandResult resumed =
      job_.run("run", ranks,
               "--resume " + quoted(folders.back()) +
                   " optimizer.lr=0.003 schedule.warmup_steps=0 training.steps=6 "
                   "output.checkpoint_every=2");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "optimizer.lr: 10000.0 -> 0.003")) << resumed.output;
  EXPECT_TRUE(fs::exists(job_.out("run") / "final" / "model.safetensors"));
}

TEST_P(DivergingRun, OneNanStepIsSkippedOnEveryRankAndTrainingGoesOn) {
  const int ranks = GetParam();
  // Rank `ranks - 1`'s loss of step 3 is NaN: no rank may apply that step.
  const std::string inject =
      "LCTRAIN_TEST_NAN_AT_STEP=3 LCTRAIN_TEST_NAN_RANK=" + std::to_string(ranks - 1) + " ";
  const std::string recipe = "schedule.warmup_steps=0 output.checkpoint_every=0 ";
  ASSERT_EQ(
      run_command(inject + job_.command("three", ranks, recipe + "training.steps=3")).exit_code, 0);
  ASSERT_EQ(job_.run("two", ranks, recipe + "training.steps=2").exit_code, 0);
  // Three steps with the third skipped leave the weights of two steps, bit for bit.
  EXPECT_TRUE(testing::tensors_equal(job_.final_tensors("three"), job_.final_tensors("two")));

  const CommandResult longer =
      run_command(inject + job_.command("five", ranks, recipe + "training.steps=5"));
  ASSERT_EQ(longer.exit_code, 0) << longer.output;
  const auto applied = applied_steps(job_.out("five"));
  EXPECT_EQ(applied,
            (std::map<int64_t, bool>{{1, true}, {2, true}, {3, false}, {4, true}, {5, true}}));
  EXPECT_TRUE(contains(longer.output, "step 3: not applied, the loss is nan")) << longer.output;
}

INSTANTIATE_TEST_SUITE_P(Ranks, DivergingRun, ::testing::Values(1, 2));

TEST(FullDisk, AFailedCheckpointWriteKeepsThePreviousOneAndLatest) {
  ScratchDir scratch;
  TrainingJob job(scratch);
  const std::string recipe = "output.checkpoint_every=2 ";
  const std::string train = quoted(testing::lctrain_binary()) + " " +
                            job.train_arguments("run", recipe + "training.steps=2");
  ASSERT_EQ(run_command(train).exit_code, 0);
  const fs::path root = job.out("run") / "checkpoints";
  const std::string latest = testing::read_text(root / "latest");

  // A 64 KiB file-size limit: the step-4 rank file (~300 KB) cannot be written.
  const CommandResult limited =
      run_command("bash -c " + quoted("ulimit -f 64; " + quoted(testing::lctrain_binary()) + " " +
                                      job.train_arguments("run", recipe + "training.steps=4")));
  ASSERT_NE(limited.exit_code, 0) << limited.output;
  EXPECT_TRUE(contains(limited.output, "checkpoint step-00000004 could not be written"))
      << limited.output;
  EXPECT_EQ(testing::read_text(root / "latest"), latest);
  EXPECT_TRUE(fs::exists(root / ".tmp-step-00000004"));
  EXPECT_FALSE(checkpoint::problem_with(root / "step-00000002").has_value());
  EXPECT_FALSE(fs::exists(root / "step-00000004"));

  // The next start clears the unfinished folder and finishes the run.
  const CommandResult again = run_command(quoted(testing::lctrain_binary()) + " " +
                                          job.train_arguments("run", recipe + "training.steps=4"));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_TRUE(contains(again.output, "left by a checkpoint that was not finished")) << again.output;
  EXPECT_FALSE(fs::exists(root / ".tmp-step-00000004"));
  EXPECT_TRUE(fs::exists(root / "step-00000004"));
}

}  // namespace
}  // namespace lctrain
