#include "train/trainer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "data/token_sequences.h"
#include "dist/communicator.h"
#include "dist/distributed_env.h"
#include "dist/sharded_llama.h"
#include "io/hf_model_dir.h"
#include "train/adamw.h"
#include "train/lr_schedule.h"
#include "train/progress_bar.h"
#include "train/runtime_rope.h"
#include "util/device_info.h"
#include "util/error.h"
#include "util/logging.h"

namespace lctrain {
namespace {

torch::ScalarType compute_dtype(const std::string& precision) {
  if (precision == "bf16") return torch::kBFloat16;
  if (precision == "fp32") return torch::kFloat32;
  throw Error("training.precision '{}' is not supported yet (use bf16 or fp32)", precision);
}

struct LoadedModel {
  LlamaConfig config;
  LlamaWeights weights;  // fp32, on CPU, identical on every rank
};

LoadedModel load_or_initialise(const TrainConfig::Model& model) {
  if (!model.path.empty()) {
    LlamaConfig config = io::load_config(model.path);
    LlamaWeights weights = io::load_weights(model.path, config, torch::kFloat32, torch::kCPU);
    return {std::move(config), std::move(weights)};
  }
  LlamaConfig config = LlamaConfig::from_file(model.config);
  LlamaWeights weights =
      init_llama_weights(config, torch::kFloat32, model.init_seed, model.init_std);
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

// Global gradient norm over every rank's shards, then clipping to max_norm (when > 0).
double clip_gradients(const std::vector<torch::Tensor>& shards, double max_norm,
                      Communicator& communicator) {
  torch::NoGradGuard no_grad;
  double local = 0.0;
  for (const auto& shard : shards) {
    if (shard.grad().defined())
      local += shard.grad().to(torch::kFloat64).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(communicator.sum_over_ranks(local));
  if (max_norm > 0.0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& shard : shards) {
      if (shard.grad().defined()) shard.grad().mul_(scale);
    }
  }
  return norm;
}

// Bytes this rank holds for fp32 master shards: with the AdamW moments, what FSDP divides by W.
int64_t shard_bytes(const std::vector<torch::Tensor>& shards) {
  int64_t bytes = 0;
  for (const auto& shard : shards) bytes += shard.numel() * shard.element_size();
  return bytes;
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
  if (main_rank) {
    std::filesystem::create_directories(output_dir);
    std::ofstream(output_dir / "config.yaml") << config.to_yaml();
  }

  if (config.output.checkpoint_every > 0 && main_rank) {
    log()->warn("output.checkpoint_every: sharded checkpoints are not implemented yet; this run "
                "saves only its final model");
  }
  LoadedModel loaded = load_or_initialise(config.model);
  const RopeScaling rope = training_rope_scaling(config.context, loaded.config);
  const int64_t sequence_length = config.effective_sequence_length();
  const TokenSequences data =
      TokenSequences::from_file(config.data.path, sequence_length, config.data.seed);
  LCTRAIN_CHECK(data.max_token() < loaded.config.vocab_size,
                "{}: token id {} is outside the model's vocabulary of {}", config.data.path,
                data.max_token(), loaded.config.vocab_size);

  ShardingOptions sharding;
  sharding.compute_dtype = compute_dtype(config.training.precision);
  sharding.reduce_dtype =
      config.training.reduce_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  sharding.activation_checkpointing = config.training.activation_checkpointing;
  ShardedLlama model(loaded.config, loaded.weights, rope, communicator, sharding);
  const int64_t parameter_count = loaded.config.num_parameters();
  loaded.weights = LlamaWeights();  // keep only the shards

  std::vector<torch::Tensor> shards = model.parameters();
  for (auto& shard : shards) shard.set_data(shard.data().to(device));
  ShardedAdamW optimizer(shards, AdamWOptions{config.optimizer.lr, config.optimizer.beta1,
                                              config.optimizer.beta2, config.optimizer.eps,
                                              config.optimizer.weight_decay});
  const LrSchedule schedule(config.optimizer, config.schedule, config.training.steps);

  // MFU = achieved FLOP/s over the device's dense bf16 peak (configured, or known by name).
  const std::optional<double> peak_tflops =
      config.training.peak_tflops > 0.0 ? std::optional<double>(config.training.peak_tflops)
                                        : known_peak_bf16_tflops(device_name(device));
  const int64_t world = communicator->world_size();
  const int64_t micro_batch = config.training.micro_batch_size;
  const int64_t accumulation = config.training.gradient_accumulation;
  const int64_t global_batch = micro_batch * accumulation * world;
  const int64_t tokens_per_step = global_batch * sequence_length;
  log()->info(
      "training {} parameters on {} rank(s) ({}): {} steps x {} sequences x {} tokens, "
      "RoPE {}, {}, activation checkpointing {}, device {}",
      parameter_count, world, communicator->backend_name(), config.training.steps, global_batch,
      sequence_length, rope.describe(), config.training.precision,
      sharding.activation_checkpointing ? "on" : "off", device_name(device));

  std::ofstream metrics;
  if (main_rank) metrics.open(output_dir / "metrics.jsonl", std::ios::app);
  ProgressBar progress(config.training.steps, main_rank);
  TrainingSummary summary;
  const auto started = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < config.training.steps; ++step) {
    const auto step_started = std::chrono::steady_clock::now();
    const double lr = schedule.lr_at(step);
    optimizer.zero_grad();
    double local_loss = 0.0;
    for (int64_t micro = 0; micro < accumulation; ++micro) {
      // The step's global batch is sequences [step * G, (step + 1) * G); any split of it over
      // ranks and micro-steps averages to the same gradient, which makes W-invariance testable.
      const int64_t first = step * global_batch + (micro * world + env.rank) * micro_batch;
      const auto [inputs, targets] = data.batch(first, micro_batch);
      const torch::Tensor loss = model.loss(inputs, targets);
      (loss / static_cast<double>(accumulation)).backward();
      local_loss += loss.item<double>() / static_cast<double>(accumulation);
    }
    const double grad_norm = clip_gradients(shards, config.training.max_grad_norm, *communicator);
    optimizer.step(lr);
    const double loss = communicator->sum_over_ranks(local_loss) / static_cast<double>(world);
    if (step == 0) {
      log()->info(
          "rank {} holds {:.2f} MiB of fp32 parameter shards and {:.2f} MiB of AdamW moments",
          env.rank, shard_bytes(shards) / 1048576.0, optimizer.state_bytes() / 1048576.0);
    }

    const std::chrono::duration<double> step_time = std::chrono::steady_clock::now() - step_started;
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started;
    const double tokens_per_second = static_cast<double>(tokens_per_step) / step_time.count();
    // 6 N FLOPs per token (forward + backward) plus attention: the usual MFU numerator.
    const double flops = (6.0 * static_cast<double>(parameter_count) +
                          12.0 * loaded.config.num_hidden_layers * loaded.config.hidden_size *
                              static_cast<double>(sequence_length)) *
                         tokens_per_second;
    const double eta = elapsed.count() / static_cast<double>(step + 1) *
                       static_cast<double>(config.training.steps - step - 1);
    summary = {step + 1, loss, tokens_per_second};
    if (main_rank &&
        ((step + 1) % config.output.log_every == 0 || step + 1 == config.training.steps)) {
      progress.clear();
      const double tflops = flops / 1e12 / static_cast<double>(world);  // per rank
      const std::optional<PeakMemory> device_memory = peak_device_memory(device);
      const double peak_memory_gib =
          device_memory ? device_memory->reserved_gib : peak_resident_gib();
      log()->info(
          "step {}/{} loss {:.4f} lr {:.3g} grad_norm {:.3f} tokens/s {:.0f} TFLOP/s/rank {:.3f}{} "
          "peak {} {:.2f} GiB ETA {:.0f} s",
          step + 1, config.training.steps, loss, lr, grad_norm, tokens_per_second, tflops,
          peak_tflops ? fmt::format(" MFU {:.1f}%", 100.0 * tflops / *peak_tflops) : "",
          device_memory ? "GPU memory" : "RSS", peak_memory_gib, eta);
      nlohmann::json record = {{"step", step + 1},
                               {"loss", loss},
                               {"lr", lr},
                               {"grad_norm", grad_norm},
                               {"tokens_per_second", tokens_per_second},
                               {"tflops_per_rank", tflops},
                               {"peak_rss_gib", peak_resident_gib()},
                               {"elapsed_seconds", elapsed.count()}};
      if (peak_tflops) record["mfu"] = tflops / *peak_tflops;
      if (device_memory) {
        record["peak_gpu_allocated_gib"] = device_memory->allocated_gib;
        record["peak_gpu_reserved_gib"] = device_memory->reserved_gib;
      }
      metrics << record.dump() << std::endl;
    }
    if (main_rank) progress.update(step + 1, fmt::format("loss {:.4f} ETA {:.0f} s", loss, eta));
  }

  progress.clear();
  if (!config.output.save_final) {
    communicator->barrier();
    return summary;
  }
  // Every rank takes part in the gathers; rank 0 writes the model with the extended window.
  const LlamaWeights final_weights = model.gather_weights(torch::kFloat32);
  if (main_rank) {
    LlamaConfig extended = loaded.config;
    extended.max_position_embeddings = config.context.target_length;
    extended.rope_scaling = rope;
    io::save_model(output_dir / "final", extended, final_weights, torch::kFloat32,
                   uint64_t{5} * 1000 * 1000 * 1000);
    log()->info("wrote {}", (output_dir / "final").string());
  }
  communicator->barrier();
  return summary;
}

}  // namespace lctrain
