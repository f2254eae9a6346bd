// Older Hugging Face checkpoints: config.json plus "pytorch_model.bin", or
// "pytorch_model.bin.index.json" plus the shards it names (torch.save archives of a state dict
// under Hugging Face's tensor names). Also the tensor-source type both torch.save formats (this
// and meta_checkpoint.h) hand to the model loader.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace lctrain::io {

// One tensor of a checkpoint under our (Hugging Face) name, described up front and read on
// demand, so the loader can check every name and shape before it reads, and holds one converted
// tensor at a time rather than a second copy of the model.
struct TensorSource {
  std::vector<int64_t> shape;
  torch::ScalarType dtype = torch::kFloat32;
  std::string origin;  // for errors: the file (and stored name) it comes from
  // May alias a memory-mapped file: callers copy it before keeping it.
  std::function<torch::Tensor()> read;
  // Optional: elements [begin, begin + out.numel()) of the tensor flattened, converted into `out`
  // (contiguous 1-D CPU), without reading the rest; the mapped pages read are released.
  std::function<void(int64_t begin, torch::Tensor& out)> read_range;
  // Optional: releases the mapped pages read() touched, once its result is no longer needed.
  std::function<void()> release;
};
using TensorSources = std::map<std::string, TensorSource>;

// Elements [begin, begin + out.numel()) of `stored` (a tensor aliasing a memory-mapped torch.save
// archive) flattened, converted into `out`, then those mapped pages released. Contiguous only.
void read_mapped_range(const torch::Tensor& stored, int64_t begin, torch::Tensor& out);
// Releases the mapped pages a tensor aliasing a memory-mapped archive spans (any strides).
void release_mapped_tensor(const torch::Tensor& stored);

// Whether dir holds pytorch_model.bin or pytorch_model.bin.index.json.
bool is_torch_bin_dir(const std::filesystem::path& dir);

// The tensors of the folder's .bin file(s). With an index, the index is the truth, as for
// safetensors: only tensors in its weight_map are exposed and each must be in the shard it names.
// Throws lctrain::Error naming the folder, the file and the tensor.
TensorSources open_torch_bin_dir(const std::filesystem::path& dir);

}  // namespace lctrain::io
