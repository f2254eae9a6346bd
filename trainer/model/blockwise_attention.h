// Causal attention computed block by block with an online softmax (the forward pass of
// FlashAttention, written in tensor ops): memory grows with block x block per head instead of
// T x T, so evaluating a model at 8K-32K tokens on a CPU does not need tens of GB of scores.
// Exact up to float rounding; accumulation is in fp32 whatever the input dtype.
//
// It is meant for inference (no autograd): under autograd every block's probabilities would be
// kept for the backward pass, which is the T x T memory again.
#pragma once

#include <torch/torch.h>

namespace lctrain {

// q: [B, H, Tq, D]; k, v: [B, H, past + Tq, D] (heads already repeated for GQA). Query i sits at
// position past + i and attends to keys 0 .. past + i. Returns [B, H, Tq, D] in q's dtype.
torch::Tensor blockwise_causal_attention(const torch::Tensor& query, const torch::Tensor& key,
                                         const torch::Tensor& value, int64_t past,
                                         int64_t block = 512);

// Whether attention over `keys` positions should take the blockwise path: on a CPU, without
// autograd, from 4096 keys on (the score matrix of a 7B model's 32 heads at 4K is 2 GB in fp32).
// LCTRAIN_ATTENTION=math or =blockwise forces a path (for benchmarks and checks).
bool use_blockwise_attention(const torch::Tensor& query, int64_t keys);

}  // namespace lctrain
