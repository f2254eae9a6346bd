// DynamicLossScaler: gradients come back unscaled, an overflow anywhere skips the step and halves
// the scale, clean steps grow it, and disabled (bf16/fp32) it does nothing.
#include <gtest/gtest.h>

#include <limits>

#include "optim/loss_scaler.h"
#include "util/error.h"

namespace lctrain {
namespace {

std::vector<torch::Tensor> parameters_with_gradients(double gradient) {
  std::vector<torch::Tensor> parameters = {torch::zeros({3}).requires_grad_(true),
                                           torch::zeros({2, 2}).requires_grad_(true),
                                           torch::zeros({4}).requires_grad_(true)};
  parameters[0].mutable_grad() = torch::full({3}, gradient);
  parameters[1].mutable_grad() = torch::full({2, 2}, gradient);
  // parameters[2] has no gradient (a unit this rank did not touch): it is skipped.
  return parameters;
}

TEST(DynamicLossScaler, UnscalesGradientsAndKeepsCleanSteps) {
  auto communicator = Communicator::single_process();
  DynamicLossScaler scaler(LossScalerOptions{1024.0, 2.0, 0.5, 3}, true);
  auto parameters = parameters_with_gradients(512.0);
  EXPECT_TRUE(scaler.unscale_and_check(parameters, *communicator));
  EXPECT_TRUE(torch::allclose(parameters[0].grad(), torch::full({3}, 0.5)));
  EXPECT_TRUE(torch::allclose(parameters[1].grad(), torch::full({2, 2}, 0.5)));
  // Growth after 3 clean steps in a row, not before.
  scaler.update(true);
  scaler.update(true);
  EXPECT_DOUBLE_EQ(scaler.scale(), 1024.0);
  scaler.update(true);
  EXPECT_DOUBLE_EQ(scaler.scale(), 2048.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(DynamicLossScaler, OverflowSkipsTheStepAndBacksOff) {
  auto communicator = Communicator::single_process();
  DynamicLossScaler scaler(LossScalerOptions{65536.0, 2.0, 0.5, 2000}, true);
  for (const double bad :
       {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    auto parameters = parameters_with_gradients(1.0);
    parameters[1].mutable_grad()[1][0] = bad;
    EXPECT_FALSE(scaler.unscale_and_check(parameters, *communicator)) << bad;
  }
  scaler.update(true);
  EXPECT_EQ(scaler.growth_tracker(), 1);
  scaler.update(false);
  EXPECT_DOUBLE_EQ(scaler.scale(), 32768.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);  // the run of clean steps starts over
  scaler.load_state(8.0, 5);
  EXPECT_DOUBLE_EQ(scaler.scale(), 8.0);
  EXPECT_EQ(scaler.growth_tracker(), 5);
}

TEST(DynamicLossScaler, DisabledItIsTheIdentity) {
  auto communicator = Communicator::single_process();
  DynamicLossScaler scaler(LossScalerOptions{}, false);
  auto parameters = parameters_with_gradients(3.0);
  parameters[0].mutable_grad()[0] = std::numeric_limits<double>::infinity();
  EXPECT_DOUBLE_EQ(scaler.scale(), 1.0);
  EXPECT_TRUE(scaler.unscale_and_check(parameters, *communicator));  // bf16/fp32 never skip here
  EXPECT_DOUBLE_EQ(parameters[1].grad()[0][0].item<double>(), 3.0);
  scaler.update(false);
  EXPECT_DOUBLE_EQ(scaler.scale(), 1.0);
}

TEST(DynamicLossScaler, RejectsNonsenseSettings) {
  EXPECT_THROW(DynamicLossScaler(LossScalerOptions{0.0, 2.0, 0.5, 10}, true), Error);
  EXPECT_THROW(DynamicLossScaler(LossScalerOptions{1.0, 1.0, 0.5, 10}, true), Error);
  EXPECT_THROW(DynamicLossScaler(LossScalerOptions{1.0, 2.0, 1.5, 10}, true), Error);
  EXPECT_THROW(DynamicLossScaler(LossScalerOptions{1.0, 2.0, 0.5, 0}, true), Error);
  DynamicLossScaler scaler(LossScalerOptions{}, true);
  EXPECT_THROW(scaler.load_state(-1.0, 0), Error);
}

}  // namespace
}  // namespace lctrain
