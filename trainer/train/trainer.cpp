#include "train/trainer.h"

#include <chrono>
#include <fstream>
#include <limits>
#include <memory>

#include "checkpoint/checkpoint_export.h"
#include "checkpoint/checkpoint_store.h"
#include "data/batch_prefetcher.h"
#include "data/token_sequences.h"
#include "distributed/communicator.h"
#include "distributed/distributed_env.h"
#include "distributed/sharded_llama.h"
#include "distributed/sharded_model_writer.h"
#include "io/hf_model_dir.h"
#include "io/weight_slices.h"
#include "optim/adamw.h"
#include "optim/gradient_clipping.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"
#include "train/runtime_rope.h"
#include "train/step_metrics.h"
#include "train/stop_request.h"
#include "util/device_info.h"
#include "util/error.h"
#include "util/logging.h"
#include "util/progress_bar.h"

namespace lctrain {
namespace {

torch::ScalarType compute_dtype(const std::string& precision, const torch::Device& device) {
  if (precision == "bf16") return torch::kBFloat16;
  if (precision == "fp32") return torch::kFloat32;
  LCTRAIN_CHECK(precision == "fp16", "training.precision '{}' is not one of bf16, fp16, fp32",
                precision);
  // LibTorch 1.13 has no fp16 matmul on CPUs: say so now rather than deep inside the forward.
  try {
    const auto probe = torch::ones({2, 2}, torch::TensorOptions(torch::kHalf).device(device));
    (void)torch::mm(probe, probe);
  } catch (const c10::Error&) {
    throw Error(
        "training.precision=fp16: this LibTorch cannot multiply fp16 matrices on {} (use "
        "bf16 or fp32 there; fp16 is for GPUs)",
        device.str());
  }
  return torch::kHalf;
}

struct LoadedModel {
  LlamaConfig config;
  std::unique_ptr<io::WeightSlices> weights;  // each rank reads only its own slices
};

LoadedModel load_or_initialise(const TrainConfig::Model& model) {
  if (!model.path.empty()) {
    LlamaConfig config = io::load_config(model.path);
    auto weights = io::open_weight_slices(model.path, config);
    return {std::move(config), std::move(weights)};
  }
  LlamaConfig config = LlamaConfig::from_file(model.config);
  auto weights = io::random_weight_slices(config, model.init_seed, model.init_std);
  return {std::move(config), std::move(weights)};
}

// The rank's device: its own GPU (LOCAL_RANK) when asked or available, else the CPU.
torch::Device training_device(const std::string& choice, const DistributedEnv& env) {
  const bool cuda = choice == "cuda" || (choice == "auto" && torch::cuda::is_available());
  if (!cuda) return torch::Device(torch::kCPU);
  LCTRAIN_CHECK(torch::cuda::is_available(),
                "training.device=cuda: this LibTorch build or machine has no CUDA");
  const auto gpus = static_cast<int64_t>(torch::cuda::device_count());
  LCTRAIN_CHECK(env.local_rank < gpus, "LOCAL_RANK {} has no GPU of its own ({} visible)",
                env.local_rank, gpus);
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
}

// The step's two figures for the host, with one collective and one device-to-host copy: the
// loss averaged over ranks, and the gradient norm (NaN for a step the loss scaler skipped).
std::pair<double, double> read_step_scalars(const torch::Tensor& local_loss,
                                            const torch::Tensor& grad_norm,
                                            Communicator& communicator) {
  torch::Tensor loss = local_loss.reshape({1});
  communicator.all_reduce_sum(loss);
  const torch::Tensor norm =
      grad_norm.defined()
          ? grad_norm.reshape({1}).to(loss.device())
          : torch::full({1}, std::numeric_limits<double>::quiet_NaN(), loss.options());
  const torch::Tensor host = torch::cat({loss, norm}).to(torch::kCPU);
  const double* values = host.data_ptr<double>();
  return {values[0] / communicator.world_size(), values[1]};
}

// Bytes this rank holds for fp32 master shards: with the AdamW moments, what FSDP divides by W.
int64_t shard_bytes(const std::vector<torch::Tensor>& shards) {
  int64_t bytes = 0;
  for (const auto& shard : shards) bytes += shard.numel() * shard.element_size();
  return bytes;
}

// Where a run starts: the checkpoint output.resume names, the newest good one in the output
// folder ("auto"), or nowhere ("never", or no checkpoint yet).
std::optional<std::filesystem::path> checkpoint_to_resume(const TrainConfig& config,
                                                          Communicator& communicator) {
  const std::string& resume = config.output.resume;
  if (resume == "never") return std::nullopt;
  if (resume == "auto") {
    const auto root = std::filesystem::path(config.output.dir) / "checkpoints";
    auto found = checkpoint::newest_good(root, communicator);
    // Starting over beside damaged checkpoints would silently throw the run away.
    LCTRAIN_CHECK(found || checkpoint::list(root).empty(),
                  "{} holds checkpoints but none is usable (see above); repair or remove them, or "
                  "start over with output.resume=never",
                  root.string());
    return found;
  }
  // A named checkpoint must be sound: falling back silently would resume something else.
  const auto problem =
      checkpoint::problem_with(resume, {communicator.rank(), communicator.world_size()});
  const bool sound = communicator.sum_over_ranks(problem ? 1.0 : 0.0) == 0.0;
  LCTRAIN_CHECK(sound, "output.resume={}: {}", resume,
                problem ? *problem : std::string("another rank found it damaged"));
  return std::filesystem::path(resume);
}

std::vector<FlatParamUnit*> unit_pointers(ShardedLlama& model) {
  std::vector<FlatParamUnit*> units;
  for (auto& unit : model.units()) units.push_back(unit.get());
  return units;
}

}  // namespace

TrainingSummary run_training(const TrainConfig& config) {
  const DistributedEnv env = DistributedEnv::from_environment();
  const torch::Device device = training_device(config.training.device, env);
  const auto communicator =
      Communicator::create(env, config.distributed.backend,
                           std::chrono::seconds(config.distributed.timeout_seconds), device);
  const bool main_rank = env.is_main();
  const std::filesystem::path output_dir = config.output.dir;
  const std::filesystem::path checkpoint_root = output_dir / "checkpoints";
  if (main_rank) {
    std::filesystem::create_directories(output_dir);
    std::ofstream(output_dir / "config.yaml") << config.to_yaml();
  }

  LoadedModel loaded = load_or_initialise(config.model);
  const RopeScaling rope = training_rope_scaling(config.context, loaded.config);
  const int64_t sequence_length = config.effective_sequence_length();
  const TokenSequences data = TokenSequences::from_file(config.data.path, sequence_length,
                                                        config.data.seed, loaded.config.vocab_size);
  // The model as it leaves training: the extended window and its RoPE scaling.
  LlamaConfig extended = loaded.config;
  extended.max_position_embeddings = config.context.target_length;
  extended.rope_scaling = rope;

  ShardingOptions sharding;
  sharding.compute_dtype = compute_dtype(config.training.precision, device);
  sharding.reduce_dtype =
      config.training.reduce_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  sharding.activation_checkpointing = config.training.activation_checkpointing;
  sharding.activation_checkpointing_every = config.training.activation_checkpointing_every;
  ShardedLlama model(loaded.config, *loaded.weights, rope, communicator, sharding);
  loaded.weights.reset();  // keep only the shards

  std::vector<torch::Tensor> shards = model.parameters();
  for (auto& shard : shards) shard.set_data(shard.data().to(device));
  ShardedAdamW optimizer(
      shards, AdamWOptions{config.optimizer.lr, config.optimizer.beta1, config.optimizer.beta2,
                           config.optimizer.eps, config.optimizer.weight_decay});
  const LrSchedule schedule(config.optimizer.lr, config.schedule, config.training.steps);
  DynamicLossScaler loss_scaler(
      LossScalerOptions{config.training.loss_scale, 2.0, 0.5, config.training.loss_scale_window},
      config.training.loss_scaling == "dynamic" ||
          (config.training.loss_scaling == "auto" && sharding.compute_dtype == torch::kHalf));

  const int world = communicator->world_size();
  const int64_t micro_batch = config.training.micro_batch_size;
  const int64_t accumulation = config.training.gradient_accumulation;
  const int64_t global_batch = micro_batch * accumulation * world;
  const int64_t tokens_per_step = global_batch * sequence_length;

  // The job's progress; a checkpoint restores all of it.
  checkpoint::JobState job;
  job.model_config = extended.to_json();
  job.base_model = config.model.path;
  job.config_yaml = config.to_yaml();
  job.data_seed = config.data.seed;
  job.data_path = config.data.path;
  if (const auto resume_from = checkpoint_to_resume(config, *communicator)) {
    const checkpoint::Manifest saved =
        checkpoint::load(*resume_from, unit_pointers(model), optimizer, env.rank, world);
    job.step = saved.step;
    job.tokens_seen = saved.tokens_seen;
    job.sequences_seen = saved.sequences_seen;
    job.loss = saved.loss;
    if (loss_scaler.enabled() && saved.loss_scale != 1.0) {
      loss_scaler.load_state(saved.loss_scale, saved.loss_scale_growth_tracker);
    }
    if (main_rank) {
      log()->info("resumed from {} (step {}, {} tokens seen, written by {} rank(s))",
                  resume_from->string(), saved.step, saved.tokens_seen, saved.world_size);
      if (saved.data_seed != config.data.seed || saved.data_path != config.data.path) {
        log()->warn(
            "data differs from the checkpoint's ({} seed {}): the order of the remaining "
            "sequences will too",
            saved.data_path, saved.data_seed);
      }
    }
  }

  const std::optional<double> peak_tflops = config.training.peak_tflops > 0.0
                                                ? std::optional<double>(config.training.peak_tflops)
                                                : known_peak_bf16_tflops(device_name(device));
  const StepMetrics metrics(loaded.config, sequence_length, tokens_per_step, world,
                            config.training.steps, device, peak_tflops);
  log()->info(
      "training {} parameters on {} rank(s) ({}): {} steps x {} sequences x {} tokens, "
      "RoPE {}, {}, activation checkpointing {}, device {}",
      loaded.config.num_parameters(), world, communicator->backend_name(), config.training.steps,
      global_batch, sequence_length, rope.describe(), config.training.precision,
      !sharding.activation_checkpointing ? std::string("off")
      : sharding.activation_checkpointing_every == 1
          ? std::string("on")
          : fmt::format("every {} layers", sharding.activation_checkpointing_every),
      device_name(device));

  const auto save_checkpoint = [&] {
    checkpoint::save(checkpoint_root, job, unit_pointers(model), optimizer, *communicator,
                     config.output.keep_checkpoints);
  };
  std::ofstream metrics_file;
  if (main_rank) metrics_file.open(output_dir / "metrics.jsonl", std::ios::app);
  ProgressBar progress(config.training.steps, main_rank);
  const StopRequest stop_request;
  TrainingSummary summary;
  summary.steps = job.step;
  const auto started = std::chrono::steady_clock::now();
  const int64_t first_step = job.step;
  BatchPrefetcher batches(
      data, BatchPlan{job.sequences_seen, micro_batch, accumulation, env.rank, world});
  for (int64_t step = first_step; step < config.training.steps; ++step) {
    const auto step_started = std::chrono::steady_clock::now();
    const double lr = schedule.lr_at(step);
    optimizer.zero_grad();
    // The loss and the gradient norm stay on the device until the step is queued: the host
    // reads them once, at the end (the fp16 loss scaler's overflow check is the one exception).
    torch::Tensor local_loss;
    for (int64_t micro = 0; micro < accumulation; ++micro) {
      // The step's global batch is the next G sequences of the data order; any split of it over
      // ranks and micro-steps averages to the same gradient (W-invariance, resharding).
      const auto [inputs, targets] = batches.next();
      const torch::Tensor loss = model.loss(inputs, targets);
      (loss * (loss_scaler.scale() / static_cast<double>(accumulation))).backward();
      const torch::Tensor share =
          loss.detach().to(torch::kFloat64) / static_cast<double>(accumulation);
      local_loss = local_loss.defined() ? local_loss + share : share;
    }
    // fp16: a step whose gradients overflowed is skipped and the loss scale backs off.
    const double scale_used = loss_scaler.scale();
    const bool finite = loss_scaler.unscale_and_check(shards, *communicator);
    torch::Tensor grad_norm;
    if (finite) {
      grad_norm = clip_gradients(shards, config.training.max_grad_norm, *communicator);
      optimizer.step(lr);
    } else if (main_rank) {
      log()->warn("step {}: gradients overflowed at loss scale {}; step skipped, scale {}",
                  step + 1, scale_used, scale_used * 0.5);
    }
    loss_scaler.update(finite);
    const auto [loss, grad_norm_value] = read_step_scalars(local_loss, grad_norm, *communicator);
    job.step = step + 1;
    job.sequences_seen += global_batch;
    job.tokens_seen += tokens_per_step;
    job.loss = loss;
    job.lr = lr;
    job.loss_scale = loss_scaler.scale();
    job.loss_scale_growth_tracker = loss_scaler.growth_tracker();
    if (step == first_step) {
      log()->info(
          "rank {} holds {:.2f} MiB of fp32 parameter shards and {:.2f} MiB of AdamW moments",
          env.rank, shard_bytes(shards) / 1048576.0, optimizer.state_bytes() / 1048576.0);
    }

    const std::chrono::duration<double> step_time = std::chrono::steady_clock::now() - step_started;
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started;
    const StepResult result{job.step,
                            loss,
                            lr,
                            grad_norm_value,
                            step_time.count(),
                            elapsed.count(),
                            job.step - first_step};
    summary = {job.step, loss, metrics.tokens_per_second(result)};
    if (main_rank &&
        (job.step % config.output.log_every == 0 || job.step == config.training.steps)) {
      progress.clear();
      log()->info("{}", metrics.describe(result));
      nlohmann::json record = metrics.record(result);
      if (loss_scaler.enabled()) {
        record["loss_scale"] = scale_used;
        record["step_skipped"] = !finite;
      }
      metrics_file << record.dump() << std::endl;
    }
    if (main_rank) {
      progress.update(job.step,
                      fmt::format("loss {:.4f} ETA {:.0f} s", loss, metrics.eta_seconds(result)));
    }

    const bool stopping = stop_request.received_by_any(*communicator);
    const int64_t every = config.output.checkpoint_every;
    const bool due =
        (every > 0 && job.step % every == 0) || (every >= 0 && job.step == config.training.steps);
    if (due || stopping) {
      progress.clear();
      save_checkpoint();
    }
    if (stopping) {
      if (main_rank) {
        log()->warn(
            "stopped by a signal after step {}: checkpoint saved; run the same command "
            "to resume",
            job.step);
      }
      summary.stopped = true;
      communicator->barrier();
      return summary;
    }
  }

  progress.clear();
  if (!config.output.save_final) {
    communicator->barrier();
    return summary;
  }
  // Every rank takes part in the gathers, one unit at a time; rank 0 writes the model with the
  // extended window.
  save_sharded_model(model, output_dir / "final", extended, torch::kFloat32,
                     uint64_t{5} * 1000 * 1000 * 1000);
  if (main_rank) {
    checkpoint::write_companion_files(output_dir / "final", extended, config.model.path);
    log()->info("wrote {}", (output_dir / "final").string());
  }
  communicator->barrier();
  return summary;
}

}  // namespace lctrain
