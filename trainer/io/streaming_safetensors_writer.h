// Hugging Face sharded safetensors written a tensor at a time. Names, dtypes and shapes are known
// up front (a model's come from its config), so the shard plan and every header are too: each
// tensor is written as it arrives and can be dropped right after. The files are those
// write_sharded_safetensors writes, byte for byte; each shard appears by atomic rename when
// complete, and the index last.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace lctrain::io {

class StreamingSafetensorsWriter {
 public:
  // Validates the plan (names unique and non-empty, dtypes supported) before touching `dir`.
  StreamingSafetensorsWriter(std::filesystem::path dir, std::vector<detail::HeaderEntry> plan,
                             uint64_t max_shard_bytes);
  ~StreamingSafetensorsWriter();

  // The next tensor of the plan (name, dtype and shape must match it).
  void write(const std::string& name, const torch::Tensor& tensor);
  // After the last tensor: commits the last shard and writes the index. Throws if tensors are
  // missing; a writer destroyed unfinished leaves no partial shard behind.
  void finish();

 private:
  struct Shard {
    std::string file;
    size_t first = 0;  // plan indices [first, end)
    size_t end = 0;
  };

  std::filesystem::path dir_;
  std::vector<detail::HeaderEntry> plan_;
  std::vector<Shard> shards_;
  uint64_t total_bytes_ = 0;
  size_t next_ = 0;   // plan index of the next tensor
  size_t shard_ = 0;  // shard being written
  std::unique_ptr<detail::AtomicFileWriter> out_;
};

}  // namespace lctrain::io
