// Token shards: the packed output of `lctrain prepare-data` and the input of training.
//
// <dir>/manifest.json          what went in (documents, bytes, tokens per source set, bad lines)
// <dir>/shard-00000.bin ...    "LCTOKENS", u32 version, u32 bytes per token (2: uint16, used when
//                              the vocabulary fits; 4: uint32), u64 token count, then the tokens,
//                              little-endian. Documents are concatenated, each followed by EOS.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "util/mapped_file.h"

namespace lctrain::data {

inline constexpr char kShardMagic[8] = {'L', 'C', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 24;

std::string shard_name(int64_t index);

// Appends tokens to numbered shards of at most `tokens_per_shard` tokens each.
class TokenShardWriter {
 public:
  TokenShardWriter(std::filesystem::path dir, int bytes_per_token, int64_t tokens_per_shard);
  ~TokenShardWriter();
  void append(const std::vector<int64_t>& tokens);
  // Finishes the open shard; returns every shard's (file name, token count).
  std::vector<std::pair<std::string, int64_t>> finish();

 private:
  void open_next();
  void close_current();

  std::filesystem::path dir_;
  int bytes_per_token_;
  int64_t tokens_per_shard_;
  std::ofstream out_;
  int64_t in_current_ = 0;
  std::vector<std::pair<std::string, int64_t>> shards_;
};

// A token file mapped read-only: tokens are copied out on demand, so a corpus larger than memory
// trains without being loaded. Either a shard (header validated) or a headerless raw uint32 file.
class MappedTokenFile {
 public:
  static MappedTokenFile shard(const std::filesystem::path& path);
  static MappedTokenFile raw_uint32(const std::filesystem::path& path);

  int64_t size() const { return count_; }
  int bytes_per_token() const { return width_; }
  const std::filesystem::path& path() const { return path_; }
  // Copies tokens [first, first + count) to `out` as int64.
  void read(int64_t first, int64_t count, int64_t* out) const;

 private:
  MappedTokenFile(std::filesystem::path path, size_t data_offset, int width, int64_t count);

  std::filesystem::path path_;
  std::shared_ptr<const MappedFile> mapping_;  // null when the file holds no tokens
  const unsigned char* tokens_ = nullptr;
  int width_;
  int64_t count_;
};

// The shard files a manifest lists, in order.
std::vector<std::filesystem::path> list_token_shards(const std::filesystem::path& dir);

// Reads one shard file (header validated) as int64 token ids.
torch::Tensor read_token_shard(const std::filesystem::path& path);

// Every shard listed in <dir>/manifest.json, in order, concatenated: int64 [N].
torch::Tensor read_token_shards(const std::filesystem::path& dir);

}  // namespace lctrain::data
