// The language-model head and its loss in one step, a chunk of tokens at a time: the mean
// cross-entropy of logits = hidden · weightᵀ (computed in hidden's dtype, then taken to fp32, as
// Hugging Face does) against targets. [tokens, vocab] logits never exist for more than one chunk:
// the forward keeps only the loss, and backward recomputes each chunk's logits and turns them into
// gradients at once. At 32K tokens and a 32000 vocabulary the whole logits would be 4 GiB in fp32
// (and again for their gradient); a chunk is at most 256 MiB.
#pragma once

#include <torch/torch.h>

namespace lctrain {

// Targets equal to this are left out of the mean (torch's cross_entropy default).
constexpr int64_t kIgnoreIndex = -100;

// hidden [tokens, d], weight [vocab, d], targets int64 [tokens]. Returns the fp32 scalar mean over
// the targets that are not kIgnoreIndex. `chunk_tokens` 0: as many tokens as keep a chunk's fp32
// logits within 256 MiB.
torch::Tensor linear_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight,
                                   const torch::Tensor& targets, int64_t chunk_tokens = 0);

}  // namespace lctrain
