#include "train/training_job.h"

#include <fstream>

#include "io/hf_model_dir.h"
#include "io/weight_slices.h"
#include "train/runtime_rope.h"
#include "util/device_info.h"
#include "util/error.h"
#include "util/logging.h"

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

LlamaConfig base_model_config(const TrainConfig::Model& model) {
  return model.path.empty() ? LlamaConfig::from_file(model.config) : io::load_config(model.path);
}

// Each rank reads only its own slices of the weights: no rank ever holds the whole model.
std::unique_ptr<io::WeightSlices> open_or_initialise(const TrainConfig::Model& model,
                                                     const LlamaConfig& config) {
  if (!model.path.empty()) return io::open_weight_slices(model.path, config);
  return io::random_weight_slices(config, model.init_seed, model.init_std);
}

ShardingOptions sharding_options(const TrainConfig::Training& training,
                                 const torch::Device& device) {
  ShardingOptions sharding;
  sharding.compute_dtype = compute_dtype(training.precision, device);
  sharding.reduce_dtype = training.reduce_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  sharding.activation_checkpointing = training.activation_checkpointing;
  sharding.activation_checkpointing_every = training.activation_checkpointing_every;
  sharding.fused_projections = training.fused_projections;
  sharding.context_parallel = training.context_parallel;
  return sharding;
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

TrainingJob::TrainingJob(const TrainConfig& config_in)
    : config(config_in),
      env(DistributedEnv::from_environment()),
      device(training_device(config.training.device, env)),
      communicator(Communicator::create(env, config.distributed.backend,
                                        std::chrono::seconds(config.distributed.timeout_seconds),
                                        device)),
      output_dir(config.output.dir),
      checkpoint_root(output_dir / "checkpoints"),
      model_config(training_model_config(config.context, base_model_config(config.model))),
      sequence_length(config.effective_sequence_length()),
      global_batch(config.global_batch_size(communicator->world_size())),
      tokens_per_step(global_batch * sequence_length),
      sharding(sharding_options(config.training, device)),
      data_(TokenSequences::from_file(config.data.path, sequence_length, config.data.seed,
                                      model_config.vocab_size)),
      schedule_(config.optimizer.lr, config.schedule, config.training.steps),
      loss_scaler_(
          LossScalerOptions{config.training.loss_scale, 2.0, 0.5,
                            config.training.loss_scale_window},
          config.training.loss_scaling == "dynamic" ||
              (config.training.loss_scaling == "auto" && sharding.compute_dtype == torch::kHalf)) {
  check_ranks_agree(config, *communicator);
  claim_ = std::make_unique<RunFolderClaim>(config, *communicator);

  {
    const auto weights = open_or_initialise(config.model, model_config);
    model_ = std::make_unique<ShardedLlama>(model_config, *weights, model_config.rope_scaling,
                                            communicator, sharding);
  }  // the weight source (and its mapped pages) closes here: only the shards stay
  shards_ = model_->parameters();
  for (auto& shard : shards_) shard.set_data(shard.data().to(device));
  optimizer_ = std::make_unique<ShardedAdamW>(
      shards_, AdamWOptions{config.optimizer.lr, config.optimizer.beta1, config.optimizer.beta2,
                            config.optimizer.eps, config.optimizer.weight_decay});

  state_.model_config = model_config.to_json();
  state_.base_model = config.model.path;
  state_.config_yaml = config.to_yaml();
  state_.data_seed = config.data.seed;
  state_.data_path = config.data.path;
  if (const auto resume_from = checkpoint_to_resume(config, *communicator)) {
    // Settings first: a refused resume should not first read gigabytes of shards.
    check_resume_compatible(checkpoint::Manifest::read(*resume_from), config, model_config,
                            global_batch, is_main());
    const checkpoint::Manifest saved = checkpoint::load(*resume_from, unit_pointers(*model_),
                                                        *optimizer_, env.rank, env.world_size);
    state_.step = saved.step;
    state_.tokens_seen = saved.tokens_seen;
    state_.sequences_seen = saved.sequences_seen;
    state_.loss = saved.loss;
    if (loss_scaler_.enabled() && saved.loss_scale != 1.0) {
      loss_scaler_.load_state(saved.loss_scale, saved.loss_scale_growth_tracker);
    }
    state_.recent_losses = saved.recent_losses;
    state_.rejected_steps = saved.rejected_steps;
    if (is_main()) {
      trim_metrics(saved.step);
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
  // Written once the run has started and agrees with its checkpoint: a refused start leaves the
  // folder's config.yaml as the run that owns it wrote it.
  if (is_main()) std::ofstream(output_dir / "config.yaml") << config.to_yaml();
  first_step_ = state_.step;
  // Loading is where a rank would hold more than its share: say what it took.
  log()->debug("rank {}: model loaded, peak host memory {:.2f} GiB", env.rank, peak_resident_gib());
  // The ranks of a context-parallel group read the same sequences; the model splits them.
  const ProcessMesh& mesh = model_->mesh();
  if (is_main() && mesh.context_parallel > 1) {
    log()->info(
        "context parallel: {} ranks per sequence, {} data-parallel group(s), {} of {} "
        "tokens per rank",
        mesh.context_parallel, mesh.data_parallel_size(), sequence_length / mesh.context_parallel,
        sequence_length);
  }
  batches_ = std::make_unique<BatchPrefetcher>(
      data_, BatchPlan{state_.sequences_seen, config.training.micro_batch_size,
                       config.training.gradient_accumulation, mesh.data_parallel_rank(),
                       mesh.data_parallel_size()});
}

void TrainingJob::trim_metrics(int64_t resumed_step) const {
  const auto path = output_dir / "metrics.jsonl";
  std::ifstream in(path);
  if (!in) return;
  std::string kept;
  bool dropped = false;
  for (std::string line; std::getline(in, line);) {
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_object() && record.contains("step") && record["step"].is_number_integer() &&
        record["step"].get<int64_t>() > resumed_step) {
      dropped = true;
      continue;
    }
    kept += line + "\n";
  }
  in.close();
  if (!dropped) return;
  const auto temp = output_dir / "metrics.jsonl.tmp";
  std::ofstream(temp) << kept;
  std::filesystem::rename(temp, path);
}

void TrainingJob::save_checkpoint() {
  checkpoint::save(checkpoint_root, state_, unit_pointers(*model_), *optimizer_, *communicator,
                   config.output.keep_checkpoints);
}

}  // namespace lctrain
