// The tensors of a model folder, whatever its format, under Hugging Face names, checked against
// the config before anything is read: what load_weights and the sliced loader (weight_slices.h)
// both read from.
#pragma once

#include <filesystem>

#include "io/torch_bin_checkpoint.h"
#include "model/llama_config.h"

namespace lctrain::io {

// Every tensor `config` implies is present with that shape and a floating dtype, and nothing else
// is there (but ignorable extras: rotary inv_freq buffers, a tied lm_head). Errors name the folder,
// the tensor and the file it is in.
TensorSources open_checked_sources(const std::filesystem::path& model_dir,
                                   const LlamaConfig& config);

}  // namespace lctrain::io
