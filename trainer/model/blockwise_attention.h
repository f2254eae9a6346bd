// Causal attention computed block by block with an online softmax (FlashAttention's forward and
// backward passes, written in tensor ops): memory grows with block x block per head instead of
// T x T, so evaluating or fine-tuning a model at 8K-32K tokens on a CPU does not need tens of GB
// of scores. Exact up to float rounding; all arithmetic is in fp32 whatever the input dtype.
// Under autograd it keeps only q, k, v, the output and one log-sum-exp per row, and recomputes
// each block's probabilities in backward.
#pragma once

#include <torch/torch.h>

namespace lctrain {

// Grouped-query attention: [B, Hkv, T, D] -> [B, Hkv * groups, T, D], each key/value head
// repeated for the `groups` query heads it serves (Hugging Face's repeat_kv layout).
torch::Tensor repeat_kv(const torch::Tensor& x, int64_t groups);

// q: [B, H, Tq, D]; k, v: [B, H, past + Tq, D] (heads already repeated for GQA). Query i sits at
// position past + i and attends to keys 0 .. past + i. Returns [B, H, Tq, D] in q's dtype.
torch::Tensor blockwise_causal_attention(const torch::Tensor& query, const torch::Tensor& key,
                                         const torch::Tensor& value, int64_t past,
                                         int64_t block = 512);

// The pieces blockwise and ring attention are made of: one span of queries against one span of
// keys, fp32 tensors in and out, the same block loops as above. Query row i sits at key position
// `offset` + i and sees keys 0 .. offset + i: offset 0 with as many keys as queries is the causal
// diagonal, offset >= the key count sees every key.
struct PartialAttention {
  torch::Tensor output;       // softmax-weighted values over the keys of this span only
  torch::Tensor log_sum_exp;  // [B, H, Tq, 1] of the scaled scores over those keys
};
PartialAttention partial_attention_forward(const torch::Tensor& query, const torch::Tensor& key,
                                           const torch::Tensor& value, int64_t offset,
                                           int64_t block);
struct AttentionGradients {
  torch::Tensor query, key, value;
};
// This span pair's share of the gradients, given the rows' whole attention: its log-sum-exp over
// every key the rows see, and row_term = sum(grad_output * output, -1) of its final output.
AttentionGradients partial_attention_backward(const torch::Tensor& query, const torch::Tensor& key,
                                              const torch::Tensor& value,
                                              const torch::Tensor& grad_output,
                                              const torch::Tensor& log_sum_exp,
                                              const torch::Tensor& row_term, int64_t offset,
                                              int64_t block);

enum class AttentionPath {
  kAuto,       // blockwise on a CPU from 4096 keys on, fused/math attention elsewhere
  kMath,       // always scaled_dot_product_attention
  kBlockwise,  // always blockwise (where more than one query is new)
};
// The process-wide choice: LCTRAIN_ATTENTION=auto|math|blockwise on first use, or as last set.
AttentionPath attention_path();
void set_attention_path(AttentionPath path);

// Whether attention over `keys` positions takes the blockwise path under attention_path(). The
// automatic threshold: from there on it is also the faster path on CPU with LibTorch 1.13, and
// the score matrix of a 7B model's 32 heads at 4K keys is 2 GB in fp32.
bool use_blockwise_attention(const torch::Tensor& query, int64_t keys);

}  // namespace lctrain
