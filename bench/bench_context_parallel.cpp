// Memory and time of one training forward + backward per rank with the sequence split over C
// ranks (context parallelism, ring attention). Run as C ranks under `lctrain launch`, e.g.
//   lctrain launch --nproc-per-node 2 -- $PWD/build/bin/bench_context_parallel --tokens 8192
// (bench/context_parallel_memory.sh loops over lengths and C). Model:
// configs/models/llama-1.1b.json (TinyLlama's shape; --config another) cut to --layers layers, PI
// to the length, fp32, activation checkpointing. Each rank prints its resting RSS (its FSDP shards:
// W = C here), the peak RSS above it during the step (activations, attention, gathered units and
// their gradients) and the step's seconds. Run it with MALLOC_MMAP_THRESHOLD_=65536 so that freed
// tensors leave the RSS at once. Prints figures; asserts nothing.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "distributed/distributed_env.h"
#include "distributed/sharded_llama.h"
#include "model/llama_weights.h"

namespace {

int64_t flag(int argc, char** argv, const std::string& name, int64_t fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (name == argv[i]) return std::atoll(argv[i + 1]);
  }
  return fallback;
}

// A /proc/self/status figure in GiB ("VmRSS", "VmHWM").
double status_gib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1048576;
  }
  return -1;
}

// Makes VmHWM (the peak RSS) start again from the current RSS.
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

}  // namespace

int main(int argc, char** argv) {
  using namespace lctrain;
  const int64_t tokens = flag(argc, argv, "--tokens", 8192);
  const int64_t layers = flag(argc, argv, "--layers", 2);
  const DistributedEnv env = DistributedEnv::from_environment();
  auto communicator = Communicator::create(env, "gloo", std::chrono::minutes(30), torch::kCPU);

  std::string model_config = "configs/models/llama-1.1b.json";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--config") model_config = argv[i + 1];
  }
  LlamaConfig config = LlamaConfig::from_file(model_config);
  config.num_hidden_layers = layers;
  const auto original = config.max_position_embeddings;
  if (tokens > original) {
    config.rope_scaling = RopeScaling::linear(static_cast<double>(tokens) / original);
    config.max_position_embeddings = tokens;
  }
  ShardingOptions options;
  options.compute_dtype = torch::kFloat32;
  options.activation_checkpointing = true;
  options.context_parallel = communicator->world_size();
  std::unique_ptr<ShardedLlama> model;
  {
    const LlamaWeights weights = init_llama_weights(config, torch::kFloat32, 0, 0.02);
    model =
        std::make_unique<ShardedLlama>(config, weights, config.rope_scaling, communicator, options);
  }
  torch::manual_seed(0);  // the same sequence on every rank
  const auto sequence = torch::randint(0, config.vocab_size, {1, tokens + 1}, torch::kInt64);
  const auto inputs = sequence.narrow(1, 0, tokens);
  const auto targets = sequence.narrow(1, 1, tokens);

  communicator->barrier();
  const double resting = status_gib("VmRSS");
  reset_peak_rss();
  const auto start = std::chrono::steady_clock::now();
  model->loss(inputs, targets).backward();
  communicator->barrier();
  const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - start;
  const double peak = status_gib("VmHWM");
  std::cout << "tokens " << tokens << " C " << communicator->world_size() << " rank "
            << communicator->rank() << " tokens_per_rank " << tokens / communicator->world_size()
            << " resting_gib " << resting << " step_peak_above_rest_gib " << peak - resting
            << " step_seconds " << seconds.count() << std::endl;
  return 0;
}
