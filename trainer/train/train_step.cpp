#include "train/train_step.h"

#include <cstdlib>
#include <limits>

#include "optim/gradient_clipping.h"
#include "util/profile_scopes.h"

namespace lctrain {
namespace {

// The step's two figures for the host, with one collective and one device-to-host copy: the
// loss averaged over ranks, and the gradient norm (NaN for a step the loss scaler skipped).
std::pair<double, double> read_step_scalars(const torch::Tensor& local_loss,
                                            const torch::Tensor& grad_norm,
                                            Communicator& communicator) {
  torch::Tensor loss = local_loss.reshape({1});
  communicator.all_reduce_sum(loss);
  const torch::Tensor norm =
      grad_norm.defined()
          ? grad_norm.reshape({1}).to(loss.device(), torch::kFloat64)
          : torch::full({1}, std::numeric_limits<double>::quiet_NaN(), loss.options());
  const torch::Tensor host = torch::cat({loss, norm}).to(torch::kCPU);
  const double* values = host.data_ptr<double>();
  return {values[0] / communicator.world_size(), values[1]};
}

// Test hook: LCTRAIN_TEST_NAN_AT_STEP=k makes rank LCTRAIN_TEST_NAN_RANK's (default 0) loss
// of step k (1-based) NaN, so tests can check that one bad step is skipped on every rank.
bool inject_nan(int64_t step, int rank) {
  static const char* at_step = std::getenv("LCTRAIN_TEST_NAN_AT_STEP");
  static const char* at_rank = std::getenv("LCTRAIN_TEST_NAN_RANK");
  return at_step != nullptr && std::atoll(at_step) == step + 1 &&
         (at_rank == nullptr ? 0 : std::atoi(at_rank)) == rank;
}

}  // namespace

StepOutcome train_step(TrainingJob& job, int64_t step, StepGuard& guard) {
  StepOutcome outcome;
  outcome.lr = job.schedule().lr_at(step);
  DynamicLossScaler& loss_scaler = job.loss_scaler();
  const int64_t accumulation = job.config.training.gradient_accumulation;
  job.optimizer().zero_grad();
  // The loss and the gradient norm stay on the device until the backward is queued: the host
  // reads them once (the fp16 loss scaler's overflow check is the one other read).
  torch::Tensor local_loss;
  for (int64_t micro = 0; micro < accumulation; ++micro) {
    // The step's global batch is the next G sequences of the data order; any split of it over
    // ranks and micro-steps averages to the same gradient (W-invariance, resharding).
    const auto [inputs, targets] = job.batches().next();
    torch::Tensor loss = job.model().loss(inputs, targets);
    if (inject_nan(step, job.env.rank)) loss = loss * std::numeric_limits<double>::quiet_NaN();
    (loss * (loss_scaler.scale() / static_cast<double>(accumulation))).backward();
    const torch::Tensor share =
        loss.detach().to(torch::kFloat64) / static_cast<double>(accumulation);
    local_loss = local_loss.defined() ? local_loss + share : share;
  }
  outcome.loss_scale = loss_scaler.scale();
  // fp16: a step whose gradients overflowed is skipped and the loss scale backs off.
  const bool scaled_gradients_finite =
      loss_scaler.unscale_and_check(job.shards(), *job.communicator);
  torch::Tensor grad_norm;
  if (scaled_gradients_finite) {
    const ProfileScope scope(kOptimizerScope);
    grad_norm = clip_gradients(job.shards(), job.config.training.max_grad_norm, *job.communicator);
  }
  const auto [loss, norm] = read_step_scalars(local_loss, grad_norm, *job.communicator);
  outcome.loss = loss;
  outcome.grad_norm = norm;
  outcome.overflowed = !scaled_gradients_finite;
  if (!outcome.overflowed) {
    // Decided from all-reduced figures: every rank applies or rejects the same step.
    outcome.rejected = guard.problem(loss, norm);
    outcome.applied = outcome.rejected.empty();
    if (outcome.applied) {
      const ProfileScope scope(kOptimizerScope);
      job.optimizer().step(outcome.lr);
    }
    guard.record(outcome.applied, loss);
  }
  loss_scaler.update(scaled_gradients_finite);

  checkpoint::JobState& state = job.state();
  state.step = step + 1;
  state.sequences_seen += job.global_batch;
  state.tokens_seen += job.tokens_per_step;
  state.loss = loss;
  state.lr = outcome.lr;
  state.loss_scale = loss_scaler.scale();
  state.loss_scale_growth_tracker = loss_scaler.growth_tracker();
  state.recent_losses = guard.history();
  state.rejected_steps = guard.rejected_total();
  return outcome;
}

}  // namespace lctrain
