// `lctrain plan`'s model (train/memory_plan.h): the ZeRO-3 shards are 16 bytes per parameter over
// W, recomputing layers shrinks the saved activations, a job that does not fit is told the
// smallest change that makes it fit, and the change does fit.
#include <gtest/gtest.h>

#include "support/test_support.h"
#include "train/memory_plan.h"

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

}  // namespace
}  // namespace lctrain
