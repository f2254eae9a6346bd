// Reader (memory-mapped, fully validated up front) and atomic writer for single safetensors files:
// u64 little-endian header length N, N bytes of JSON header, then the raw tensor bytes.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "util/mapped_file.h"

namespace lctrain::io {

struct TensorInfo {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data buffer (after the header)
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps the file and validates the header and every tensor's offsets; throws lctrain::Error
  // naming the file (and the tensor) on any defect, so later accessors cannot fail on bad data.
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws Error if absent
  // An owned contiguous CPU copy in the stored dtype (the mapping may be unaligned). The mapped
  // pages it read are released: a reader never keeps a second copy of what it returned.
  torch::Tensor tensor(const std::string& name) const;
  // Elements [begin, begin + out.numel()) of the tensor flattened (row-major) into `out`, a
  // contiguous CPU tensor of any floating dtype: converted a chunk at a time through a small
  // buffer, each chunk's mapped pages released after use. Throws Error naming the file and the
  // tensor when the range lies outside it.
  void read_range(const std::string& name, int64_t begin, torch::Tensor& out) const;
  const std::map<std::string, std::string>& metadata() const {
    return metadata_;
  }  // "__metadata__"

 private:
  SafetensorsFile() = default;

  std::filesystem::path path_;
  std::shared_ptr<const MappedFile> mapping_;  // shared so copies stay cheap
  uint64_t data_start_ = 0;                    // 8 + header length
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (made contiguous CPU; supported dtypes only) to `path` atomically: into
// "<path>.tmp", fsync, rename. Names must be unique and non-empty; tensors are laid out in the
// given order; the header is padded with spaces to a multiple of 8 bytes.
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Byte size of the tensor's data (for shard planning).
uint64_t tensor_bytes(const torch::Tensor& tensor);

namespace detail {

struct HeaderEntry {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
};
// The bytes a safetensors file starts with (length, then the JSON header padded to a multiple of
// 8) for tensors laid out in the given order: the one header format of every writer.
std::string safetensors_header(const std::vector<HeaderEntry>& entries,
                               const std::map<std::string, std::string>& metadata);

// Writes a file atomically: bytes go to "<path>.tmp", commit() fsyncs and renames it over
// `path`; destroying an uncommitted writer removes the temporary file.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::filesystem::path path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);
  void commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  int fd_ = -1;
};

}  // namespace detail
}  // namespace lctrain::io
