// What running a model over a long sequence will take, from its config alone: so that a length
// that cannot fit (a passkey prompt of 10M tokens, 100M new tokens) is refused up front with the
// figure, instead of ending in the OOM killer or a raw allocation error hours later.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "model/llama_config.h"

namespace lctrain {

// Bytes, as doubles: the sizes asked for may overflow 64-bit integers.
struct MemoryEstimate {
  double weights = 0.0;
  double kv_cache = 0.0;
  double attention = 0.0;    // scores (math path) or blocks and fp32 copies (blockwise/fused)
  double activations = 0.0;  // one decoder layer's hidden, q/k/v and MLP tensors at a time
  double logits = 0.0;
  double total() const { return weights + kv_cache + attention + activations + logits; }
  // "about 2.6 TB (weights 1.2 MB, KV cache 2.6 TB, ...)".
  std::string describe() const;
};

// Greedy generation of `new_tokens` after `prompt_tokens` (what generate and the passkey test
// run): the prompt's forward pass and the KV cache for the whole sequence, or with
// `use_cache` false the forward pass over the whole sequence that every step recomputes.
MemoryEstimate estimate_generation_memory(const LlamaConfig& config, torch::ScalarType dtype,
                                          const torch::Device& device, double prompt_tokens,
                                          double new_tokens, bool use_cache = true);

// The memory a run on `device` can have at most: physical RAM (or the cgroup's limit, when
// lower) for the CPU, the GPU's total memory for CUDA.
double device_memory_bytes(const torch::Device& device);

// Throws Error ("`what` would need about ... but ... has ...") when the estimate exceeds the
// device's memory.
void check_fits_in_memory(const MemoryEstimate& estimate, const torch::Device& device,
                          const std::string& what);

// "1.5 GB", "312 MB" (decimal units, as --max-shard-size reads them).
std::string format_bytes(double bytes);

}  // namespace lctrain
