// StepGuard: which steps may update the model (finite loss and norm, no spike over the recent
// median), when a run must stop, and that its history survives a checkpoint.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "train/step_guard.h"
#include "util/error.h"

namespace lctrain {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(StepGuard, RejectsNonFiniteLossOrNorm) {
  const StepGuard guard(3, 10.0);
  EXPECT_EQ(guard.problem(2.5, 1.0), "");
  EXPECT_NE(guard.problem(kNaN, 1.0).find("loss is nan"), std::string::npos);
  EXPECT_NE(guard.problem(kInf, 1.0).find("loss is inf"), std::string::npos);
  EXPECT_NE(guard.problem(2.5, kNaN).find("gradient norm is nan"), std::string::npos);
  EXPECT_NE(guard.problem(2.5, kInf).find("gradient norm is inf"), std::string::npos);
}

TEST(StepGuard, RejectsASpikeOverTheMedianOnceThereIsHistory) {
  StepGuard guard(3, 10.0);
  // Without history there is no median to judge against.
  EXPECT_EQ(guard.problem(1e6, 1.0), "");
  for (const double loss : {6.0, 5.0, 4.0, 7.0}) guard.record(true, loss);
  // Median of {6, 5, 4, 7} (the upper middle) is 6: 60 is the limit.
  EXPECT_EQ(guard.problem(59.0, 1.0), "");
  EXPECT_NE(guard.problem(61.0, 1.0).find("median"), std::string::npos);
  EXPECT_NE(guard.problem(7127688.0, 0.0).find("median"), std::string::npos);
}

TEST(StepGuard, ALossAsHighAsARecentOneIsNoSpikeOnMixedData) {
  // One sequence per step over a mix of easy rows (passkey documents, loss ~0.2) and prose
  // (loss 2-4): the median is an easy row's, and a prose row is 10-20x over it.
  StepGuard guard(3, 10.0);
  for (int i = 0; i < 20; ++i) guard.record(true, 0.2);
  for (const double loss : {3.9, 2.5, 3.1}) guard.record(true, loss);
  EXPECT_EQ(guard.problem(3.5, 1.0), "");
  EXPECT_EQ(guard.problem(3.9, 1.0), "");
  // Past everything recent and 10x the median: a spike.
  const auto spike = guard.problem(4.5, 1.0);
  EXPECT_NE(spike.find("highest 3.9"), std::string::npos) << spike;
  // On steady data the highest recent loss is near the median: the factor decides.
  StepGuard steady(3, 10.0);
  for (int i = 0; i < 32; ++i) steady.record(true, 2.0 + 0.01 * i);
  EXPECT_EQ(steady.problem(20.0, 1.0), "");
  EXPECT_NE(steady.problem(22.0, 1.0), "");
}

TEST(StepGuard, SpikeRuleOffWithFactorZero) {
  StepGuard guard(3, 0.0);
  for (int i = 0; i < 10; ++i) guard.record(true, 1.0);
  EXPECT_EQ(guard.problem(1e9, 1.0), "");
}

TEST(StepGuard, StopsAfterTooManyRejectedInARowOnly) {
  StepGuard guard(3, 10.0);
  guard.record(false, kNaN);
  guard.record(false, kNaN);
  EXPECT_FALSE(guard.exhausted());
  guard.record(true, 2.0);  // a good step resets the count
  EXPECT_EQ(guard.rejected_in_a_row(), 0);
  guard.record(false, kNaN);
  guard.record(false, kNaN);
  EXPECT_FALSE(guard.exhausted());
  guard.record(false, kNaN);
  EXPECT_TRUE(guard.exhausted());
  EXPECT_EQ(guard.rejected_total(), 5);
}

TEST(StepGuard, HistoryIsBoundedAndRestored) {
  StepGuard guard(3, 10.0);
  for (int i = 0; i < 100; ++i) guard.record(true, static_cast<double>(i));
  const auto history = guard.history();
  ASSERT_EQ(history.size(), StepGuard::kHistory);
  EXPECT_EQ(history.back(), 99.0);
  StepGuard resumed(3, 10.0);
  resumed.restore(history, 7);
  EXPECT_EQ(resumed.history(), history);
  EXPECT_EQ(resumed.rejected_total(), 7);
  EXPECT_EQ(resumed.problem(2000.0, 1.0), guard.problem(2000.0, 1.0));
}

TEST(StepGuard, RefusesAZeroLimit) { EXPECT_THROW(StepGuard(0, 10.0), Error); }

}  // namespace
}  // namespace lctrain
