// The end of training's model write, streamed: a unit is gathered, its tensors written by rank 0,
// and it is freed before the next, so no rank ever holds the whole model (ZeRO-3's share plus one
// unit is the peak).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include "distributed/sharded_llama.h"

namespace lctrain {

// Collective: every rank calls it. Writes `config` and the model's weights in `dtype` as a Hugging
// Face folder (what io::save_model writes), plus whatever `write_extras` (called on rank 0 only)
// adds. The folder is written beside `model_dir` and swapped in whole (io::write_model_folder): a
// failed write leaves an earlier folder there as it was. If rank 0 fails to write, every rank still
// takes part in the remaining gathers and then throws: rank 0 its error, the others one that points
// to it.
void save_sharded_model(
    ShardedLlama& model, const std::filesystem::path& model_dir, const LlamaConfig& config,
    torch::ScalarType dtype, uint64_t max_shard_bytes,
    const std::function<void(const std::filesystem::path& folder)>& write_extras = nullptr);

}  // namespace lctrain
