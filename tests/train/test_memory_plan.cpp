// `lctrain plan`'s model (train/memory_plan.h): the ZeRO-3 shards are 16 bytes per parameter over
// W, recomputing layers shrinks the saved activations, a job that does not fit is told the
// smallest change that makes it fit, and the change does fit; context parallelism splits what
// scales with the tokens over the group, and is suggested when one sequence alone does not fit.
#include <gtest/gtest.h>

#include "support/error_expectations.h"
#include "support/test_support.h"
#include "train/memory_plan.h"
#include "util/error.h"

namespace lctrain {
namespace {

PlanInput llama_7b(int64_t devices, int64_t length) {
  PlanInput input;
  input.config =
      LlamaConfig::from_file(testing::source_dir() / "configs" / "models" / "llama-7b.json");
  input.devices = devices;
  input.sequence_length = length;
  return input;
}

double line(const Plan& plan, const std::string& prefix) {
  for (const PlanLine& entry : plan.device) {
    if (entry.what.rfind(prefix, 0) == 0) return entry.bytes;
  }
  ADD_FAILURE() << "no line " << prefix;
  return 0.0;
}

TEST(MemoryPlan, ShardsAreSixteenBytesPerParameterOverTheWorldSize) {
  for (const int64_t devices : {1, 2, 8}) {
    const PlanInput input = llama_7b(devices, 8192);
    const Plan plan = make_plan(input);
    const double parameters = static_cast<double>(input.config.num_parameters());
    EXPECT_DOUBLE_EQ(line(plan, "fp32 parameter shard") + line(plan, "fp32 gradient shard") +
                         line(plan, "AdamW moments"),
                     16.0 * parameters / static_cast<double>(devices));
    double sum = 0.0;
    for (const PlanLine& entry : plan.device) sum += entry.bytes;
    EXPECT_DOUBLE_EQ(plan.device_total, sum);
  }
  EXPECT_LT(make_plan(llama_7b(8, 8192)).device_total, make_plan(llama_7b(4, 8192)).device_total);
}

TEST(MemoryPlan, RecomputingLayersShrinksSavedActivations) {
  PlanInput every = llama_7b(8, 16384);
  PlanInput none = every;
  none.checkpoint_every = 0;
  const double saved_every = line(make_plan(every), "saved activations");
  const double saved_none = line(make_plan(none), "saved activations");
  EXPECT_LT(saved_every * 10.0, saved_none);
  // Saved activations grow linearly with L' (blockwise/fused attention: no L' x L' term).
  PlanInput longer = every;
  longer.sequence_length = 32768;
  EXPECT_NEAR(line(make_plan(longer), "saved activations") / saved_every, 2.0, 1e-9);
}

TEST(MemoryPlan, SuggestsTheSmallestChangeThatFitsAndItFits) {
  PlanInput input = llama_7b(8, 32768);
  input.checkpoint_every = 0;  // 32 layers of activations at 32K tokens: far above 80 GB
  ASSERT_FALSE(make_plan(input).fits);
  EXPECT_EQ(change_to_fit(input), "recompute every layer (activation_checkpointing_every=1)");
  input.checkpoint_every = 1;
  EXPECT_TRUE(make_plan(input).fits);
  EXPECT_EQ(change_to_fit(input), "");

  // 70B: 16 bytes x 69 B parameters / 8 = 138 GB of shards per GPU: only more GPUs help.
  PlanInput big = input;
  big.config =
      LlamaConfig::from_file(testing::source_dir() / "configs" / "models" / "llama-2-70b.json");
  big.sequence_length = 8192;
  ASSERT_FALSE(make_plan(big).fits);
  const std::string change = change_to_fit(big);
  ASSERT_NE(change.find("devices instead of 8"), std::string::npos) << change;
  big.devices = std::stoll(change);
  EXPECT_TRUE(make_plan(big).fits);
  big.devices -= 1;
  EXPECT_FALSE(make_plan(big).fits);
}

TEST(MemoryPlan, ContextParallelismSplitsTheActivationsButNotTheShards) {
  const PlanInput whole = llama_7b(8, 32768);
  for (const int64_t group : {2, 4, 8}) {
    PlanInput split = whole;
    split.context_parallel = group;
    const Plan a = make_plan(whole);
    const Plan b = make_plan(split);
    EXPECT_DOUBLE_EQ(line(b, "fp32 parameter shard"), line(a, "fp32 parameter shard"));
    EXPECT_NEAR(line(b, "saved activations") * static_cast<double>(group),
                line(a, "saved activations"), 1e-6 * line(a, "saved activations"));
    EXPECT_GT(line(b, "attention workspace (ring"), 0.0);
    EXPECT_NEAR(b.step_seconds * static_cast<double>(group), a.step_seconds, 1e-9 * a.step_seconds);
    // The same devices compute 1/C of the sequences each step, C times as fast.
    EXPECT_NEAR(b.tokens_per_second, a.tokens_per_second, 1e-9 * a.tokens_per_second);
  }
  PlanInput uneven = whole;
  uneven.context_parallel = 3;
  EXPECT_THROW(make_plan(uneven), Error);
  PlanInput short_sequence = llama_7b(8, 8190);
  short_sequence.context_parallel = 2;  // 8190 tokens are not 4 equal chunks
  EXPECT_THROW(make_plan(short_sequence), Error);
}

TEST(MemoryPlan, SuggestsContextParallelismWhenOneSequenceDoesNotFit) {
  // 256K tokens: the checkpointed layer inputs alone (32 x 256K x 4096 x 2 bytes) exceed 64 GB;
  // more devices shrink only the shards.
  PlanInput input = llama_7b(8, 262144);
  ASSERT_FALSE(make_plan(input).fits);
  const std::string change = change_to_fit(input);
  const std::string key = "training.context_parallel=";
  const auto at = change.find(key);
  ASSERT_NE(at, std::string::npos) << change;
  input.context_parallel = std::stoll(change.substr(at + key.size()));
  EXPECT_TRUE(make_plan(input).fits) << change;
  input.context_parallel /= 2;
  EXPECT_FALSE(make_plan(input).fits) << "not the smallest group: " << change;
}

TEST(CliPlan, SaysWhatFitsAndRefusesAGroupThatDoesNotDivideTheDevices) {
  const std::string model =
      testing::quoted(testing::source_dir() / "configs" / "models" / "llama-7b.json");
  const auto fits = testing::run_lctrain("plan " + model + " --gpus 8 --length 32768");
  ASSERT_EQ(fits.exit_code, 0) << fits.output;
  testing::expect_contains(fits.output, {"fits"});
  const auto split =
      testing::run_lctrain("plan " + model + " --gpus 8 --length 32768 --context-parallel 4");
  ASSERT_EQ(split.exit_code, 0) << split.output;
  testing::expect_contains(split.output, {"split over 4 ranks (8192 tokens each)"});
  testing::expect_contains(split.output, {"ring: K/V blocks in flight"});
  const auto uneven =
      testing::run_lctrain("plan " + model + " --gpus 8 --length 32768 --context-parallel 3");
  EXPECT_EQ(uneven.exit_code, 1) << uneven.output;
  testing::expect_contains(uneven.output, {"context parallelism 3 does not divide 8 devices"});
}

}  // namespace
}  // namespace lctrain
