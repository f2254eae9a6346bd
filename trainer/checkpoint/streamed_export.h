// The weights of a sharded training checkpoint written into a Hugging Face model folder one FSDP
// unit at a time: a unit is put back together from the rank files, its tensors written, and it
// is freed before the next. Peak memory: the largest unit in fp32 plus one converted tensor.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>

#include "checkpoint/checkpoint_manifest.h"
#include "model/llama_config.h"

namespace lctrain::checkpoint {

// Writes config.json and the weights (in `dtype`, sharded above max_shard_bytes) into `out`;
// returns the checkpoint's (extended) config. Errors name the checkpoint and the tensor.
LlamaConfig write_model_streamed(const std::filesystem::path& checkpoint_dir,
                                 const Manifest& manifest, const std::filesystem::path& out,
                                 torch::ScalarType dtype, uint64_t max_shard_bytes);

}  // namespace lctrain::checkpoint
