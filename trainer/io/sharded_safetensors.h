// A Hugging Face checkpoint folder's weights: "model.safetensors", or
// "model.safetensors.index.json" plus the shard files it names; and the matching sharded writer.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"

namespace lctrain::io {

class ShardedSafetensors {
 public:
  // Prefers the index when present; the index is the truth: only tensors in its weight_map are
  // exposed, each must exist in the shard it names. Throws lctrain::Error naming dir otherwise.
  static ShardedSafetensors open_dir(const std::filesystem::path& dir);

  std::vector<std::string> names() const;  // sorted, across shards
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  torch::Tensor tensor(const std::string& name) const;
  // SafetensorsFile::read_range on the shard that holds the tensor.
  void read_range(const std::string& name, int64_t begin, torch::Tensor& out) const;
  std::filesystem::path file_of(const std::string& name) const;

 private:
  ShardedSafetensors() = default;
  const SafetensorsFile& shard_of(const std::string& name) const;

  std::filesystem::path dir_;
  std::vector<SafetensorsFile> shards_;        // each file opened once
  std::map<std::string, size_t> shard_index_;  // tensor name -> index into shards_
};

// Writes HF layout into dir (created if needed): "model.safetensors" when everything fits in
// max_shard_bytes, else "model-0000i-of-0000N.safetensors" plus model.safetensors.index.json.
// Shards are filled greedily in the given order; a tensor bigger than the limit gets its own.
// Every file carries metadata {"format": "pt"}. Only the files it writes are replaced.
void write_sharded_safetensors(const std::filesystem::path& dir,
                               const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                               uint64_t max_shard_bytes);

// Parses "5GB", "500MB", "10KB", "2GiB", "123" (bytes). Units are case-insensitive and decimal
// (GB = 1e9) as in Hugging Face; KiB/MiB/GiB/TiB are binary. Throws lctrain::Error on junk.
uint64_t parse_byte_size(const std::string& text);

}  // namespace lctrain::io
