// Meta's own LLaMA checkpoint layout: params.json, consolidated.NN.pth (torch.save archives; with
// several, each is one model-parallel shard) and tokenizer.model. Read into our Hugging Face
// layout: shards merged, names mapped, and wq/wk rows permuted from Meta's RoPE, which rotates
// adjacent pairs, to Hugging Face's, which rotates the two halves of each head.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

#include "io/torch_bin_checkpoint.h"
#include "model/llama_config.h"

namespace lctrain::io {

// Whether dir holds params.json and at least one consolidated.NN.pth.
bool is_meta_checkpoint_dir(const std::filesystem::path& dir);

// Meta's FFN width: int(2 * 4 * dim / 3), times ffn_dim_multiplier when given, rounded up to a
// multiple of multiple_of.
int64_t meta_intermediate_size(int64_t dim, int64_t multiple_of,
                               std::optional<double> ffn_dim_multiplier);

// params.json as a Hugging Face LlamaConfig. vocab_size -1 (or absent) is taken from
// tok_embeddings in consolidated.00.pth. params.json has no trained window; unless it gives
// max_seq_len, the window is inferred as Hugging Face's converter does per LLaMA version (see the
// .cpp) and logged.
LlamaConfig load_meta_config(const std::filesystem::path& dir);

// The weights under Hugging Face names, merged across model-parallel shards on demand (dim 0 for
// wq/wk/wv/w1/w3/output, dim 1 for wo/w2/tok_embeddings, norms replicated and checked equal), with
// wq/wk permuted for `config`'s head counts. Names it does not know keep their Meta name, so the
// loader reports them as unexpected. Throws lctrain::Error naming the shard file and tensor.
TensorSources open_meta_checkpoint(const std::filesystem::path& dir, const LlamaConfig& config);

}  // namespace lctrain::io
