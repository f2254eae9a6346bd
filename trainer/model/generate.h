// Greedy decoding: with a KV cache (the fast path) or by recomputing the whole sequence each step
// (the reference the cache is tested against).
#pragma once

#include <optional>
#include <vector>

#include "model/llama_model.h"

namespace lctrain {

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  std::optional<int64_t> stop_token;  // usually eos_token_id
  bool use_cache = true;
};

// Returns only the new tokens (the stop token included when it was produced).
std::vector<int64_t> greedy_generate(LlamaModel& model, const std::vector<int64_t>& prompt,
                                     const GenerateOptions& options);

}  // namespace lctrain
