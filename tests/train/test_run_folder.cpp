// A run folder belongs to one run: one job at a time (a lock naming its holder), no silent start
// over an earlier run, no silent change of what a resumed run computes, no config.yaml written by
// a start that failed, and no window shorter than the model's.
#include <gtest/gtest.h>

#include <thread>

#include "support/training_job.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::contains;
using testing::quoted;
using testing::run_command;
using testing::ScratchDir;
using testing::TrainingJob;

class RunFolder : public ::testing::Test {
 protected:
  CommandResult train(const std::string& out, const std::string& extra) const {
    return run_command(quoted(testing::lctrain_binary()) + " " + job_.train_arguments(out, extra));
  }
  ScratchDir scratch_;
  TrainingJob job_{scratch_};
};

TEST_F(RunFolder, TwoJobsInOneFolderAtOnceAreRefusedWithTheHolderNamed) {
  // The first job pauses 20 s inside its step-1 checkpoint, holding the folder.
  const fs::path log = scratch_ / "first.log";
  std::thread first([&] {
    run_command("LCTRAIN_TEST_CHECKPOINT_PAUSE_MS=20000 LCTRAIN_TEST_CHECKPOINT_PAUSE_STEP=1 " +
                quoted(testing::lctrain_binary()) + " " +
                job_.train_arguments("run", "training.steps=1") + " > " + quoted(log) + " 2>&1");
  });
  // Wait until the first job has created its checkpoint folder (it is then inside the pause).
  for (int i = 0; i < 600 && !fs::exists(job_.out("run") / "checkpoints"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const CommandResult second = train("run", "training.steps=1");
  first.join();
  EXPECT_NE(second.exit_code, 0);
  EXPECT_TRUE(contains(second.output, "is in use by another lctrain job")) << second.output;
  EXPECT_TRUE(contains(second.output, " pid ")) << second.output;
  // The first job finished undisturbed.
  EXPECT_TRUE(fs::exists(job_.out("run") / "final" / "model.safetensors"))
      << testing::read_text(log);
}

TEST_F(RunFolder, ALockLeftByADeadJobIsTakenOverWithAWarning) {
  fs::create_directories(job_.out("run"));
  testing::write_text(job_.out("run") / ".lctrain.lock", "otherhost pid 4242\n");
  const CommandResult result = train("run", "training.steps=1");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "otherhost pid 4242")) << result.output;
}

TEST_F(RunFolder, StartingOverAnEarlierRunNeedsOverwriteAndMovesItAside) {
  ASSERT_EQ(train("run", "training.steps=4").exit_code, 0);
  const std::string config_before = testing::read_text(job_.out("run") / "config.yaml");
  const CommandResult refused = train("run", "output.resume=never training.steps=3");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(contains(refused.output, "holds an earlier run")) << refused.output;
  EXPECT_TRUE(contains(refused.output, "output.overwrite=true")) << refused.output;
  // A refused start leaves the folder's config.yaml as its run wrote it.
  EXPECT_EQ(testing::read_text(job_.out("run") / "config.yaml"), config_before);

  const CommandResult fresh =
      train("run", "output.resume=never output.overwrite=true training.steps=3");
  ASSERT_EQ(fresh.exit_code, 0) << fresh.output;
  int moved = 0;
  for (const auto& entry : fs::directory_iterator(job_.out("run"))) {
    if (entry.path().filename().string().rfind("previous-", 0) != 0) continue;
    ++moved;
    EXPECT_TRUE(fs::exists(entry.path() / "checkpoints" / "step-00000004"));
  }
  EXPECT_EQ(moved, 1);
  // The folder now holds the new run only: resume and export take its step 3.
  EXPECT_FALSE(fs::exists(job_.out("run") / "checkpoints" / "step-00000004"));
  const CommandResult resumed = train("run", "training.steps=5");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "step-00000003")) << resumed.output;
}

TEST_F(RunFolder, ResumeRefusesChangesToWhatTheRunComputesUnlessAllowed) {
  ASSERT_EQ(train("run", "training.steps=2").exit_code, 0);
  const CommandResult longer = train("run", "training.steps=4 context.target_length=64");
  EXPECT_NE(longer.exit_code, 0);
  EXPECT_TRUE(contains(longer.output, "max_position_embeddings: 32 -> 64")) << longer.output;
  EXPECT_TRUE(contains(longer.output, "output.allow_config_changes")) << longer.output;

  const CommandResult batch = train("run", "training.steps=4 training.micro_batch_size=1");
  EXPECT_NE(batch.exit_code, 0);
  EXPECT_TRUE(contains(batch.output, "global batch: 2 -> 1")) << batch.output;

  const CommandResult allowed =
      train("run", "training.steps=4 context.target_length=64 output.allow_config_changes=true");
  ASSERT_EQ(allowed.exit_code, 0) << allowed.output;
  EXPECT_TRUE(contains(allowed.output, "resuming with changes to what the run computes"))
      << allowed.output;
}

TEST_F(RunFolder, AFailedStartLeavesConfigYamlAlone) {
  ASSERT_EQ(train("run", "training.steps=2").exit_code, 0);
  const std::string before = testing::read_text(job_.out("run") / "config.yaml");
  const CommandResult bad = train("run", "training.steps=4 data.path=/nonexistent/tokens");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_EQ(testing::read_text(job_.out("run") / "config.yaml"), before);
}

TEST_F(RunFolder, ATargetShorterThanTheModelsWindowIsRefused) {
  // The model's window is 8 tokens: 4 would shrink it, whatever original_length says.
  const CommandResult result = train("run", "context.target_length=4");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_TRUE(contains(result.output, "shorter than the window the model already runs at"))
      << result.output;
  EXPECT_FALSE(fs::exists(job_.out("run") / "config.yaml"));
}

TEST_F(RunFolder, RanksStartedWithDifferentConfigsStopTogether) {
  // Two "nodes" of one rank each; node 1's recipe has another learning rate and window.
  const std::string launch = quoted(testing::lctrain_binary()) +
                             " launch --nproc-per-node 1 --nnodes 2 --master-addr 127.0.0.1 "
                             "--master-port 29731 --node-rank ";
  const fs::path node1_log = scratch_ / "node1.log";
  std::thread node1([&] {
    run_command(launch + "1 -- " +
                job_.train_arguments("run",
                                     "training.steps=2 optimizer.lr=0.01 "
                                     "context.target_length=48") +
                " > " + quoted(node1_log) + " 2>&1");
  });
  const CommandResult node0 =
      run_command(launch + "0 -- " + job_.train_arguments("run", "training.steps=2"));
  node1.join();
  EXPECT_NE(node0.exit_code, 0);
  EXPECT_TRUE(contains(node0.output, "started with different configs")) << node0.output;
  EXPECT_TRUE(contains(node0.output, "optimizer.lr")) << node0.output;
  EXPECT_TRUE(contains(node0.output, "context.target_length")) << node0.output;
  EXPECT_FALSE(fs::exists(job_.out("run") / "checkpoints"));
}

}  // namespace
}  // namespace lctrain
