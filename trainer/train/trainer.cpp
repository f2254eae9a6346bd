#include "train/trainer.h"

#include <chrono>
#include <fstream>

#include "checkpoint/checkpoint_export.h"
#include "distributed/sharded_model_writer.h"
#include "profile/step_profiler.h"
#include "train/step_metrics.h"
#include "train/stop_request.h"
#include "train/train_step.h"
#include "train/training_job.h"
#include "util/device_info.h"
#include "util/error.h"
#include "util/logging.h"
#include "util/profile_scopes.h"
#include "util/progress_bar.h"

namespace lctrain {
namespace {

// Bytes this rank holds for fp32 master shards: with the AdamW moments, what FSDP divides by W.
int64_t shard_bytes(const std::vector<torch::Tensor>& shards) {
  int64_t bytes = 0;
  for (const auto& shard : shards) bytes += shard.numel() * shard.element_size();
  return bytes;
}

std::string describe_recompute(const ShardingOptions& sharding) {
  if (!sharding.activation_checkpointing) return "off";
  if (sharding.activation_checkpointing_every == 1) return "on";
  return fmt::format("every {} layers", sharding.activation_checkpointing_every);
}

// The newest checkpoint a diverged run can go back to, for its error message.
std::string newest_checkpoint_text(const std::filesystem::path& root) {
  const auto folders = checkpoint::list(root);
  return folders.empty() ? std::string("none was written")
                         : fmt::format("the newest is {}", folders.front().string());
}

// Logs a step the guard rejected or the loss scaler skipped; throws when the run must stop.
void handle_skipped_step(const TrainingJob& job, const StepOutcome& outcome, const StepGuard& guard,
                         int64_t step) {
  const TrainConfig& config = job.config;
  if (outcome.overflowed) {
    if (job.is_main()) {
      log()->warn("step {}: gradients overflowed at loss scale {}; step skipped, scale {}", step,
                  outcome.loss_scale, outcome.loss_scale * 0.5);
    }
    // An fp16 overflow is expected now and then; a scale that has collapsed is divergence.
    LCTRAIN_CHECK(outcome.loss_scale * 0.5 >= 1.0,
                  "step {}: the fp16 loss scale collapsed below 1 (gradients overflow at any "
                  "scale): the run diverged; {}. Resume from a checkpoint with a lower "
                  "optimizer.lr or training.max_grad_norm, or use training.precision=bf16",
                  step, newest_checkpoint_text(job.checkpoint_root));
    return;
  }
  if (outcome.rejected.empty()) return;
  if (job.is_main()) {
    log()->warn(
        "step {}: not applied, {} (loss {}, gradient norm {}); {} in a row, the run "
        "stops at {}",
        step, outcome.rejected, outcome.loss, outcome.grad_norm, guard.rejected_in_a_row(),
        config.training.max_nonfinite_steps);
  }
  LCTRAIN_CHECK(!guard.exhausted(),
                "step {}: the run diverged ({} steps in a row not applied; the last: {}). No "
                "final model was written; {}. Resume from it with a lower optimizer.lr or "
                "training.max_grad_norm (output.resume=<checkpoint> optimizer.lr=...)",
                step, guard.rejected_in_a_row(), outcome.rejected,
                newest_checkpoint_text(job.checkpoint_root));
}

}  // namespace

TrainingSummary run_training(const TrainConfig& config) {
  // Read first: a profile path that cannot be written is refused before the run folder is made.
  std::optional<ProfileSettings> profile = profile_settings_from_environment();
  TrainingJob job(config);
  checkpoint::JobState& state = job.state();
  const int world = job.communicator->world_size();
  const std::optional<double> peak_tflops = config.training.peak_tflops > 0.0
                                                ? std::optional<double>(config.training.peak_tflops)
                                                : known_peak_bf16_tflops(device_name(job.device));
  const StepMetrics metrics(job.model_config, job.sequence_length, job.tokens_per_step, world,
                            config.training.steps, job.device, peak_tflops);
  log()->info(
      "training {} parameters on {} rank(s) ({}): {} steps x {} sequences x {} tokens, "
      "RoPE {}, {}, activation checkpointing {}, device {}",
      job.model_config.num_parameters(), world, job.communicator->backend_name(),
      config.training.steps, job.global_batch, job.sequence_length,
      job.model_config.rope_scaling.describe(), config.training.precision,
      describe_recompute(job.sharding), device_name(job.device));

  StepGuard guard(config.training.max_nonfinite_steps, config.training.loss_spike_factor);
  guard.restore(state.recent_losses, state.rejected_steps);
  std::ofstream metrics_file;
  if (job.is_main()) metrics_file.open(job.output_dir / "metrics.jsonl", std::ios::app);
  ProgressBar progress(config.training.steps, job.is_main());
  const StopRequest stop_request;
  TrainingSummary summary;
  summary.steps = state.step;
  StepProfiler profiler(std::move(profile), job.is_main(), job.first_step(), config.training.steps,
                        job.device);
  const auto started = std::chrono::steady_clock::now();
  for (int64_t step = job.first_step(); step < config.training.steps; ++step) {
    const auto step_started = std::chrono::steady_clock::now();
    profiler.before_step(step);
    const StepOutcome outcome = [&] {
      const ProfileScope scope(kStepScope);
      return train_step(job, step, guard);
    }();
    profiler.after_step(step);
    if (step == job.first_step()) {
      log()->info(
          "rank {} holds {:.2f} MiB of fp32 parameter shards and {:.2f} MiB of AdamW moments",
          job.env.rank, shard_bytes(job.shards()) / 1048576.0,
          job.optimizer().state_bytes() / 1048576.0);
    }
    if (!outcome.applied) {
      progress.clear();
      handle_skipped_step(job, outcome, guard, state.step);
    }

    const std::chrono::duration<double> step_time = std::chrono::steady_clock::now() - step_started;
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started;
    const StepResult result{state.step,
                            outcome.loss,
                            outcome.lr,
                            outcome.grad_norm,
                            step_time.count(),
                            elapsed.count(),
                            state.step - job.first_step()};
    summary = {state.step, outcome.loss, metrics.tokens_per_second(result)};
    if (job.is_main() && (state.step % config.output.log_every == 0 ||
                          state.step == config.training.steps || !outcome.applied)) {
      progress.clear();
      log()->info("{}", metrics.describe(result));
      nlohmann::json record = metrics.record(result);
      if (job.loss_scaler().enabled()) record["loss_scale"] = outcome.loss_scale;
      record["step_skipped"] = !outcome.applied;
      if (!outcome.rejected.empty()) record["rejected"] = outcome.rejected;
      record["rejected_steps"] = guard.rejected_total();
      metrics_file << record.dump() << std::endl;
    }
    if (job.is_main()) {
      progress.update(state.step, fmt::format("loss {:.4f} ETA {:.0f} s", outcome.loss,
                                              metrics.eta_seconds(result)));
    }

    const bool stopping = stop_request.received_by_any(*job.communicator);
    const int64_t every = config.output.checkpoint_every;
    const bool due = (every > 0 && state.step % every == 0) ||
                     (every >= 0 && state.step == config.training.steps);
    if (due || stopping) {
      progress.clear();
      job.save_checkpoint();
    }
    if (stopping) {
      if (job.is_main()) {
        log()->warn(
            "stopped by a signal after step {}: checkpoint saved; run the same command "
            "to resume",
            state.step);
      }
      summary.stopped = true;
      job.communicator->barrier();
      return summary;
    }
  }

  progress.clear();
  if (!config.output.save_final) {
    job.communicator->barrier();
    return summary;
  }
  // Every rank takes part in the gathers, one unit at a time; rank 0 writes the model with the
  // extended window.
  const auto final_dir = job.output_dir / "final";
  save_sharded_model(job.model(), final_dir, job.model_config, torch::kFloat32,
                     uint64_t{5} * 1000 * 1000 * 1000, [&](const std::filesystem::path& folder) {
                       checkpoint::write_companion_files(folder, job.model_config,
                                                         config.model.path);
                     });
  if (job.is_main()) log()->info("wrote {}", final_dir.string());
  log()->debug("rank {}: final model written, peak host memory {:.2f} GiB",
               job.communicator->rank(), peak_resident_gib());
  job.communicator->barrier();
  return summary;
}

}  // namespace lctrain
