#include "model/generate.h"

#include "util/error.h"

namespace lctrain {
namespace {

// Only the last position is projected onto the vocabulary: logits for the whole prompt would
// take prompt x vocab floats (gigabytes for a long passkey prompt) and only the last is read.
int64_t next_token(LlamaModel& model, const torch::Tensor& ids, KVCache* cache = nullptr) {
  const torch::Tensor hidden = model.hidden_states(ids, cache);
  return model.logits(hidden.select(1, hidden.size(1) - 1)).argmax(-1).item<int64_t>();
}

torch::Tensor as_batch(const std::vector<int64_t>& tokens) {
  return torch::tensor(tokens, torch::kInt64).unsqueeze(0);
}

}  // namespace

std::vector<int64_t> greedy_generate(LlamaModel& model, const std::vector<int64_t>& prompt,
                                     const GenerateOptions& options) {
  LCTRAIN_CHECK(!prompt.empty(), "generation needs at least one prompt token");
  LCTRAIN_CHECK(options.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  torch::NoGradGuard no_grad;
  std::vector<int64_t> generated;
  if (options.max_new_tokens == 0) return generated;

  const auto emit = [&](int64_t token) {
    generated.push_back(token);
    return options.stop_token && token == *options.stop_token;
  };

  if (!options.use_cache) {
    std::vector<int64_t> sequence = prompt;
    for (int64_t step = 0; step < options.max_new_tokens; ++step) {
      const int64_t token = next_token(model, as_batch(sequence));
      sequence.push_back(token);
      if (emit(token)) break;
    }
    return generated;
  }

  const int64_t capacity = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
  KVCache cache = model.make_cache(1, capacity);
  int64_t token = next_token(model, as_batch(prompt), &cache);
  for (int64_t step = 0;; ++step) {
    if (emit(token) || step + 1 >= options.max_new_tokens) break;
    token = next_token(model, as_batch({token}), &cache);
  }
  return generated;
}

}  // namespace lctrain
