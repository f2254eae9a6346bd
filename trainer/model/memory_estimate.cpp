#include "model/memory_estimate.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "model/blockwise_attention.h"
#include "util/error.h"

#ifdef LCTRAIN_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace lctrain {
namespace {

double element_bytes(torch::ScalarType dtype) {
  return static_cast<double>(c10::elementSize(dtype));
}

// Whether attention over `keys` positions takes the blockwise path, as use_blockwise_attention
// decides it for a CPU tensor; CUDA runs fused kernels whose memory also grows linearly.
bool linear_attention_memory(const torch::Device& device, double keys) {
  if (!device.is_cpu()) return true;
  switch (attention_path()) {
    case AttentionPath::kMath:
      return false;
    case AttentionPath::kBlockwise:
      return true;
    case AttentionPath::kAuto:
      break;
  }
  return keys >= 4096;
}

// A cgroup v2 (memory.max) or v1 (memory.limit_in_bytes) limit below the RAM, if any.
double cgroup_limit_bytes() {
  for (const char* file :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream stream(file);
    double limit = 0.0;
    if (stream >> limit && limit > 0.0) return limit;  // "max" fails to parse: no limit
  }
  return 0.0;
}

}  // namespace

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  size_t unit = 0;
  while (bytes >= 1000.0 && unit + 1 < std::size(units)) {
    bytes /= 1000.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[unit]);
}

std::string MemoryEstimate::describe() const {
  return fmt::format(
      "about {} (weights {}, KV cache {}, attention workspace {}, activations {}, logits {})",
      format_bytes(total()), format_bytes(weights), format_bytes(kv_cache), format_bytes(attention),
      format_bytes(activations), format_bytes(logits));
}

namespace {

struct Workspace {
  double attention = 0.0;
  double activations = 0.0;
};

// One decoder layer's forward pass of `queries` new tokens over `keys` positions (no autograd:
// layers run one after the other and keep nothing).
Workspace forward_workspace(const LlamaConfig& config, double bytes, const torch::Device& device,
                            double queries, double keys) {
  const double heads = static_cast<double>(config.num_attention_heads);
  const double kv_heads = static_cast<double>(config.num_key_value_heads);
  const double head_dim = static_cast<double>(config.head_dim);
  Workspace workspace;
  if (queries > 1.0 && linear_attention_memory(device, keys)) {
    // fp32 copies of q, k and v, the output with its row maxima and sums, one 512 x 512 block.
    workspace.attention =
        4.0 * heads * (3.0 * keys * head_dim + 2.0 * queries * head_dim + 2.0 * 512.0 * 512.0);
  } else {
    // The fp32 score matrix and its softmax.
    workspace.attention = 2.0 * 4.0 * heads * queries * keys;
  }
  // Residual, input and fp32 RMSNorm of the hidden states; q, k, v; the keys and values repeated
  // for grouped-query attention; gate, up and their product in the MLP.
  workspace.activations = 3.0 * queries * static_cast<double>(config.hidden_size) * 4.0 +
                          queries * (heads + 2.0 * kv_heads) * head_dim * bytes +
                          2.0 * heads * keys * head_dim * bytes +
                          3.0 * queries * static_cast<double>(config.intermediate_size) * bytes;
  return workspace;
}

}  // namespace

MemoryEstimate estimate_generation_memory(const LlamaConfig& config, torch::ScalarType dtype,
                                          const torch::Device& device, double prompt_tokens,
                                          double new_tokens, bool use_cache) {
  const double bytes = element_bytes(dtype);
  const double sequence = prompt_tokens + new_tokens;
  MemoryEstimate estimate;
  estimate.weights = static_cast<double>(config.num_parameters()) * bytes;
  Workspace workspace;
  if (use_cache) {
    estimate.kv_cache = 2.0 * static_cast<double>(config.num_hidden_layers) *
                        static_cast<double>(config.num_key_value_heads) *
                        static_cast<double>(config.head_dim) * sequence * bytes;
    // The prompt's pass, then single tokens over an ever longer cache.
    const Workspace prompt = forward_workspace(config, bytes, device, prompt_tokens, prompt_tokens);
    const Workspace last = forward_workspace(config, bytes, device, 1.0, sequence);
    workspace.attention = std::max(prompt.attention, last.attention);
    workspace.activations = std::max(prompt.activations, last.activations);
  } else {
    workspace = forward_workspace(config, bytes, device, sequence, sequence);
  }
  estimate.attention = workspace.attention;
  estimate.activations = workspace.activations;
  // Only the last position is projected onto the vocabulary (model/generate.cpp).
  estimate.logits = static_cast<double>(config.vocab_size) * 4.0;
  return estimate;
}

double device_memory_bytes([[maybe_unused]] const torch::Device& device) {
#ifdef LCTRAIN_WITH_CUDA
  if (device.is_cuda()) {
    const int index = device.has_index() ? device.index() : 0;
    cudaDeviceProp properties{};
    if (cudaGetDeviceProperties(&properties, index) == cudaSuccess) {
      return static_cast<double>(properties.totalGlobalMem);
    }
  }
#endif
  const double ram = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) *
                     static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  const double limit = cgroup_limit_bytes();
  return limit > 0.0 ? std::min(ram, limit) : ram;
}

void check_fits_in_memory(const MemoryEstimate& estimate, const torch::Device& device,
                          const std::string& what) {
  const double available = device_memory_bytes(device);
  LCTRAIN_CHECK(estimate.total() <= available,
                "{} would need {}, but {} has {} in all; ask for less", what, estimate.describe(),
                device.is_cpu() ? std::string("this machine") : device.str(),
                format_bytes(available));
}

}  // namespace lctrain
