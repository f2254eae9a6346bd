// LrSchedule: the paper's warmup (10% -> 100% over 20 steps, then constant), cosine endpoints,
// purity (resume-safe) and the checks on values built in code.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "optim/lr_schedule.h"
#include "util/error.h"

namespace lctrain {
namespace {

constexpr double kLr = 2e-5;

LrScheduleOptions paper_schedule() { return LrScheduleOptions{}; }

TEST(LrSchedule, PaperWarmupThenConstant) {
  const LrSchedule schedule(kLr, paper_schedule(), 1000);
  EXPECT_DOUBLE_EQ(schedule.lr_at(0), 0.1 * kLr);  // warmup starts at 10% of lr
  EXPECT_DOUBLE_EQ(schedule.lr_at(1), kLr * (0.1 + 0.9 * 1.0 / 20.0));
  EXPECT_DOUBLE_EQ(schedule.lr_at(10), kLr * 0.55);  // half way
  EXPECT_DOUBLE_EQ(schedule.lr_at(19), kLr * (0.1 + 0.9 * 19.0 / 20.0));
  EXPECT_DOUBLE_EQ(schedule.lr_at(20), kLr);  // full lr once warmup is over
  EXPECT_DOUBLE_EQ(schedule.lr_at(500), kLr);
  EXPECT_DOUBLE_EQ(schedule.lr_at(999), kLr);
  EXPECT_DOUBLE_EQ(schedule.lr_at(5000), kLr);  // past the end: still constant
}

TEST(LrSchedule, WarmupIsLinearAndIncreasing) {
  const LrSchedule schedule(kLr, paper_schedule(), 1000);
  const double increment = kLr * 0.9 / 20.0;
  for (int64_t step = 1; step < 20; ++step) {
    EXPECT_NEAR(schedule.lr_at(step) - schedule.lr_at(step - 1), increment, 1e-18) << step;
  }
  EXPECT_NEAR(schedule.lr_at(20) - schedule.lr_at(19), increment, 1e-18);
}

TEST(LrSchedule, NoWarmupStartsAtFullRate) {
  LrScheduleOptions config = paper_schedule();
  config.warmup_steps = 0;
  const LrSchedule schedule(kLr, config, 100);
  EXPECT_DOUBLE_EQ(schedule.lr_at(0), kLr);
  EXPECT_DOUBLE_EQ(schedule.lr_at(99), kLr);
}

TEST(LrSchedule, StartFactorOneMeansFlat) {
  LrScheduleOptions config = paper_schedule();
  config.warmup_start_factor = 1.0;
  const LrSchedule schedule(kLr, config, 100);
  for (int64_t step = 0; step < 30; ++step) EXPECT_DOUBLE_EQ(schedule.lr_at(step), kLr);
}

TEST(LrSchedule, CosineEndpoints) {
  LrScheduleOptions config = paper_schedule();
  config.type = "cosine";
  config.min_lr_factor = 0.1;
  const LrSchedule schedule(kLr, config, 1000);
  EXPECT_DOUBLE_EQ(schedule.lr_at(0), 0.1 * kLr);  // warmup is shared with constant
  EXPECT_DOUBLE_EQ(schedule.lr_at(10), 0.55 * kLr);
  EXPECT_DOUBLE_EQ(schedule.lr_at(20), kLr);            // decay starts at the peak
  EXPECT_DOUBLE_EQ(schedule.lr_at(510), 0.55 * kLr);    // middle of the 980 decay steps
  EXPECT_NEAR(schedule.lr_at(1000), 0.1 * kLr, 1e-20);  // floor at the end
  EXPECT_NEAR(schedule.lr_at(4000), 0.1 * kLr, 1e-20);  // clamped past the end
  // The last trained step is just above the floor.
  EXPECT_GT(schedule.lr_at(999), 0.1 * kLr);
  EXPECT_LT(schedule.lr_at(999), 0.1001 * kLr);
  for (int64_t step = 21; step <= 1000; ++step) {
    EXPECT_LE(schedule.lr_at(step), schedule.lr_at(step - 1)) << step;
  }
}

TEST(LrSchedule, CosineToZeroWithoutWarmup) {
  LrScheduleOptions config = paper_schedule();
  config.type = "cosine";
  config.warmup_steps = 0;
  const LrSchedule schedule(kLr, config, 100);
  EXPECT_DOUBLE_EQ(schedule.lr_at(0), kLr);
  EXPECT_DOUBLE_EQ(schedule.lr_at(50), 0.5 * kLr);
  EXPECT_NEAR(schedule.lr_at(100), 0.0, 1e-20);
}

TEST(LrSchedule, CosineWhenWarmupCoversTheRun) {
  LrScheduleOptions config = paper_schedule();
  config.type = "cosine";
  const LrSchedule schedule(kLr, config, 10);  // 10 steps, 20 warmup
  EXPECT_DOUBLE_EQ(schedule.lr_at(9), kLr * (0.1 + 0.9 * 9.0 / 20.0));
  // Nothing is left to decay over; steps past the end stay finite and within [0, lr].
  for (int64_t step = 10; step < 40; ++step) {
    EXPECT_TRUE(std::isfinite(schedule.lr_at(step)));
    EXPECT_GE(schedule.lr_at(step), 0.0);
    EXPECT_LE(schedule.lr_at(step), kLr);
  }
}

TEST(LrSchedule, IsAPureFunctionOfStep) {
  // A resumed run builds a fresh schedule and asks for step k: it must match the original run.
  LrScheduleOptions config = paper_schedule();
  config.type = "cosine";
  const LrSchedule first(kLr, config, 300);
  std::vector<double> sequential;
  for (int64_t step = 0; step < 300; ++step) sequential.push_back(first.lr_at(step));
  const LrSchedule resumed(kLr, config, 300);
  for (int64_t step = 299; step >= 150; --step) EXPECT_EQ(resumed.lr_at(step), sequential[step]);
}

std::string error_of(double lr, const LrScheduleOptions& schedule, int64_t total_steps) {
  try {
    LrSchedule(lr, schedule, total_steps);
  } catch (const Error& error) {
    return error.what();
  }
  return "no error";
}

TEST(LrSchedule, RejectsInvalidSettings) {
  LrScheduleOptions schedule = paper_schedule();
  double lr = kLr;
  EXPECT_NE(error_of(lr, schedule, 0).find("training.steps"), std::string::npos);
  lr = 0.0;
  EXPECT_NE(error_of(lr, schedule, 10).find("optimizer.lr"), std::string::npos);
  lr = kLr;
  schedule.type = "linear";
  EXPECT_NE(error_of(lr, schedule, 10).find("schedule.type"), std::string::npos);
  schedule = paper_schedule();
  schedule.warmup_steps = -1;
  EXPECT_NE(error_of(lr, schedule, 10).find("schedule.warmup_steps"), std::string::npos);
  schedule = paper_schedule();
  schedule.warmup_start_factor = 0.0;
  EXPECT_NE(error_of(lr, schedule, 10).find("warmup_start_factor"), std::string::npos);
  schedule = paper_schedule();
  schedule.min_lr_factor = 1.5;
  EXPECT_NE(error_of(lr, schedule, 10).find("min_lr_factor"), std::string::npos);

  const LrSchedule valid(kLr, paper_schedule(), 10);
  EXPECT_THROW(valid.lr_at(-1), Error);
}

}  // namespace
}  // namespace lctrain
