// A model's weights read a piece at a time: what each FSDP rank builds its 1/W shards from, so
// that no rank ever holds the whole model. A piece is an element range of one tensor flattened
// row-major; the reader converts it into the caller's buffer. Sources: a model folder (every
// format load_weights reads, checked up front the same way), LLaMA's random initialisation, and
// tensors already in memory.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/llama_config.h"

namespace lctrain::io {

class WeightSlices {
 public:
  virtual ~WeightSlices() = default;
  // Fills `out` (contiguous, 1-D, CPU, floating dtype) with elements [begin, begin + out.numel())
  // of tensor `name` flattened. Readers are free to expect the model's tensors in weight_slots()
  // order (each once or more, never going back to an earlier one): that is how FSDP units are laid
  // out, and what lets the random initialiser draw each tensor once.
  virtual void read(const std::string& name, int64_t begin, torch::Tensor& out) = 0;
};

// The weights of a model folder (safetensors single or sharded, pytorch_model*.bin, Meta
// consolidated.NN.pth). Names, shapes and dtypes are checked against `config` before anything is
// read, with load_weights' errors. Safetensors and contiguous .bin tensors are read range by range
// from the memory-mapped files; Meta tensors row by row from their model-parallel parts, through
// the wq/wk row permutation; other tensors (a strided .bin storage) one whole tensor at a time.
// Mapped pages are released after use.
std::unique_ptr<WeightSlices> open_weight_slices(const std::filesystem::path& model_dir,
                                                 const LlamaConfig& config);

// init_llama_weights' values, one whole tensor at a time (peak: the largest tensor), so that a
// rank's slices do not depend on the world size.
std::unique_ptr<WeightSlices> random_weight_slices(const LlamaConfig& config, uint64_t seed,
                                                   double init_std);

// Whole tensors already in memory (any dtype), by name.
std::unique_ptr<WeightSlices> in_memory_weight_slices(
    std::vector<std::pair<std::string, torch::Tensor>> tensors);

}  // namespace lctrain::io
