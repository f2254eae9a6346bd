// Long-sequence perplexity as the Position Interpolation paper measures it (section 3.2): the
// sliding window of Press et al. (2022). A document is scored window by window; each window holds
// at most C tokens and moves S tokens at a time, and only the tokens not yet scored (the window's
// last S) count. Every token after the first is therefore scored exactly once, the first C of
// them with all the context before them and the rest with at least C - S tokens of context.
#pragma once

#include <cstdint>
#include <vector>

#include "model/llama_model.h"

namespace lctrain::eval {

// Tokens [begin, end) go into the model; the predictions of tokens [score_from, end) count.
struct Window {
  int64_t begin;
  int64_t end;
  int64_t score_from;
};

// The windows over a document of `length` tokens. The last window ends at the document's end
// and keeps a full C tokens of context (it may move less than S).
std::vector<Window> sliding_windows(int64_t length, int64_t context, int64_t stride);

struct Score {
  double nll_sum = 0.0;  // sum of -log p(token | context), natural log
  int64_t tokens = 0;    // tokens scored
  double perplexity() const;
  Score& operator+=(const Score& other);
};

struct SlidingWindowOptions {
  int64_t context = 2048;
  int64_t stride = 256;
  // Windows of equal length run together, up to this many tokens per forward pass.
  int64_t batch_tokens = 16384;
};

// Scores `tokens` (one document) with the model's runtime RoPE. Logits are computed only at the
// scored positions and reduced in fp32.
Score score_document(LlamaModel& model, const std::vector<int64_t>& tokens,
                     const SlidingWindowOptions& options);

}  // namespace lctrain::eval
