// Context parallelism through `lctrain launch` (Gloo, fp32, CPU): a tiny GQA model at a PI factor
// of 4 trained with each sequence split over C ranks (ring attention over zigzag chunks) matches
// the one-process run in every step's loss and in the final weights, for W = 2 (C = 2),
// W = 4 (C = 2 x 2 data-parallel groups) and W = 4 (C = 4), with and without activation
// checkpointing. A checkpoint written with C = 2 resumes at C = 1 and the other way round, and
// settings that cannot split the ranks or the sequence are refused with a clear message.
#include <gtest/gtest.h>

#include "support/training_job.h"

namespace lctrain {
namespace {

using testing::CommandResult;
using testing::contains;
using testing::quoted;
using testing::ScratchDir;
using testing::TrainingJob;

constexpr double kRelative = 1e-5;

void expect_same_losses(const std::map<int64_t, double>& expected,
                        const std::map<int64_t, double>& actual, int64_t first, int64_t last,
                        const std::string& what) {
  for (int64_t step = first; step <= last; ++step) {
    ASSERT_TRUE(expected.count(step) && actual.count(step)) << what << " step " << step;
    EXPECT_NEAR(actual.at(step), expected.at(step), kRelative * std::abs(expected.at(step)))
        << what << " step " << step;
  }
}

void expect_same_weights(const std::map<std::string, torch::Tensor>& expected,
                         const std::map<std::string, torch::Tensor>& actual,
                         const std::string& what) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  for (const auto& [name, tensor] : expected) {
    ASSERT_TRUE(actual.count(name)) << what << " " << name;
    const double scale = tensor.abs().max().item<double>();
    EXPECT_LE((actual.at(name) - tensor).abs().max().item<double>(), kRelative * scale)
        << what << " " << name;
  }
}

class ContextParallel : public ::testing::TestWithParam<bool> {
 protected:
  // 10 steps of 2 sequences (the job's micro batch) per optimizer step, whatever W and C are.
  CommandResult train(const std::string& out, int ranks, int context_parallel,
                      const std::string& extra = "") {
    const int data_parallel = ranks / context_parallel;
    const std::string settings = fmt::format(
        "training.steps=10 training.context_parallel={} training.micro_batch_size={} "
        "training.activation_checkpointing={} {}",
        context_parallel, 2 / data_parallel, GetParam() ? "true" : "false", extra);
    return job_.run(out, ranks, settings);
  }

  ScratchDir scratch_;
  TrainingJob job_{scratch_};
};

TEST_P(ContextParallel, SplitSequencesTrainAsOneProcessDoes) {
  ASSERT_EQ(train("w1", 1, 1).exit_code, 0);
  const auto reference = job_.losses("w1");
  ASSERT_EQ(reference.size(), 10u);
  // Training must have moved: otherwise equal weights would prove nothing.
  EXPECT_LT(reference.rbegin()->second, reference.begin()->second);
  for (const auto& [ranks, context_parallel] : {std::pair{2, 2}, {4, 2}, {4, 4}}) {
    const std::string out = fmt::format("w{}c{}", ranks, context_parallel);
    const CommandResult result = train(out, ranks, context_parallel);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_TRUE(
        contains(result.output,
                 fmt::format("context parallel: {} ranks per sequence, {} data-parallel "
                             "group(s), {} of 32 tokens per rank",
                             context_parallel, ranks / context_parallel, 32 / context_parallel)))
        << result.output;
    expect_same_losses(reference, job_.losses(out), 1, 10, out);
    expect_same_weights(job_.final_tensors("w1"), job_.final_tensors(out), out);
  }
}

INSTANTIATE_TEST_SUITE_P(ActivationCheckpointing, ContextParallel, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Checkpointed" : "Plain";
                         });

class ContextParallelResume : public ::testing::Test {
 protected:
  ScratchDir scratch_;
  TrainingJob job_{scratch_};
};

TEST_F(ContextParallelResume, ACheckpointOfOneLayoutContinuesInTheOther) {
  ASSERT_EQ(job_.run("straight", 1).exit_code, 0);
  const auto straight = job_.losses("straight");
  ASSERT_EQ(straight.size(), 20u);
  // C = 2 for 10 steps, then C = 1 from its checkpoint; and C = 1 first, then C = 2.
  ASSERT_EQ(job_.run("cp-first", 2, "training.steps=10 training.context_parallel=2").exit_code, 0);
  ASSERT_EQ(job_.run("plain-first", 1, "training.steps=10").exit_code, 0);
  const auto checkpoint = [&](const std::string& out) {
    return quoted(job_.out(out) / "checkpoints" / "step-00000010");
  };
  const CommandResult to_plain = job_.run("to-plain", 1, "--resume " + checkpoint("cp-first"));
  ASSERT_EQ(to_plain.exit_code, 0) << to_plain.output;
  EXPECT_TRUE(contains(to_plain.output, "resharding 2 -> 1 ranks")) << to_plain.output;
  const CommandResult to_cp = job_.run(
      "to-cp", 2, "--resume " + checkpoint("plain-first") + " training.context_parallel=2");
  ASSERT_EQ(to_cp.exit_code, 0) << to_cp.output;

  expect_same_losses(straight, job_.losses("cp-first"), 1, 10, "C=2 first half");
  expect_same_losses(straight, job_.losses("to-plain"), 11, 20, "C=2 -> C=1");
  expect_same_losses(straight, job_.losses("to-cp"), 11, 20, "C=1 -> C=2");
  const auto reference = job_.final_tensors("straight");
  expect_same_weights(reference, job_.final_tensors("to-plain"), "C=2 -> C=1");
  expect_same_weights(reference, job_.final_tensors("to-cp"), "C=1 -> C=2");
}

TEST(ContextParallelSettings, RanksThatDoNotSplitIntoGroupsAreRefused) {
  ScratchDir scratch;
  TrainingJob job(scratch);
  for (const auto& [ranks, context_parallel] : {std::pair{2, 4}, {1, 2}}) {
    const CommandResult result =
        job.run("bad", ranks, fmt::format("training.context_parallel={}", context_parallel));
    EXPECT_NE(result.exit_code, 0);
    EXPECT_TRUE(contains(result.output,
                         fmt::format("training.context_parallel={} does not divide the {} rank(s) "
                                     "into equal groups",
                                     context_parallel, ranks)))
        << result.output;
    EXPECT_FALSE(std::filesystem::exists(job.out("bad") / "metrics.jsonl"));
  }
}

TEST(ContextParallelSettings, ASequenceThatDoesNotCutIntoTwoCChunksIsRefused) {
  ScratchDir scratch;
  TrainingJob job(scratch);
  // 32 tokens into 2 x 3 chunks.
  const CommandResult result = job.run("bad", 3, "training.context_parallel=3");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_TRUE(contains(result.output,
                       "training.context_parallel=3 cuts each sequence into 6 equal chunks, which "
                       "32 tokens do not divide into"))
      << result.output;
}

}  // namespace
}  // namespace lctrain
