// Forward-pass speed of a random ~100M-parameter LLaMA at 2048 tokens, bf16 against f32, side by
// side in one run (these machines are noisy: compare the ratio). Prints figures; asserts nothing.
// Usage: bench_forward [--tokens N] [--repeats R] [--layers L] [--hidden H]
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include "model/llama_model.h"

namespace {

int64_t flag(int argc, char** argv, const std::string& name, int64_t fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (name == argv[i]) return std::atoll(argv[i + 1]);
  }
  return fallback;
}

double seconds_per_forward(lctrain::LlamaModel& model, const torch::Tensor& ids, int64_t repeats) {
  torch::NoGradGuard no_grad;
  model.forward(ids.narrow(1, 0, 128));  // warm-up: allocator, RoPE table, kernels
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < repeats; ++i) model.forward(ids);
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / static_cast<double>(repeats);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t tokens = flag(argc, argv, "--tokens", 2048);
  const int64_t repeats = flag(argc, argv, "--repeats", 2);
  const int64_t layers = flag(argc, argv, "--layers", 12);
  const int64_t hidden = flag(argc, argv, "--hidden", 768);
  const lctrain::LlamaConfig config = lctrain::LlamaConfig::from_json(
      {{"vocab_size", 32000}, {"hidden_size", hidden}, {"intermediate_size", hidden * 8 / 3},
       {"num_hidden_layers", layers}, {"num_attention_heads", hidden / 64},
       {"max_position_embeddings", 2048}, {"tie_word_embeddings", true}},
      "bench config");
  const auto ids = torch::randint(config.vocab_size, {1, tokens}, torch::kInt64);
  // Matmul FLOPs of a forward: 2 per weight per token (the embedding lookup is free but the
  // tied lm_head is a matmul, so num_parameters() counts it once), plus QK^T and AV (causal: half).
  const double flops = 2.0 * static_cast<double>(config.num_parameters()) * tokens +
                       2.0 * layers * static_cast<double>(tokens) * tokens * hidden;

  std::cout << "model: " << config.num_parameters() / 1e6 << "M parameters, " << layers
            << " layers, hidden " << hidden << "; " << tokens << " tokens; "
            << at::get_num_threads() << " threads\n";
  std::map<torch::ScalarType, double> seconds;
  for (const auto dtype : {torch::kBFloat16, torch::kFloat32}) {
    lctrain::LlamaModel model(config, lctrain::init_llama_weights(config, dtype, 1),
                              lctrain::RopeScaling::linear(4.0));
    seconds[dtype] = seconds_per_forward(model, ids, repeats);
    std::cout << (dtype == torch::kBFloat16 ? "bf16" : "f32 ") << " forward: " << seconds[dtype]
              << " s  (" << flops / seconds[dtype] / 1e9 << " GFLOP/s)" << std::endl;
  }
  std::cout << "f32 / bf16 time ratio: " << seconds[torch::kFloat32] / seconds[torch::kBFloat16]
            << "\n";
  return 0;
}
