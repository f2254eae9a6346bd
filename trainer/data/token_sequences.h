// TokenSequences: fixed-length training sequences (L' inputs + 1 target token) cut from a token
// stream, in a seeded shuffled order that is a pure function of the global sequence index. The
// loader's whole state is therefore one counter (sequences consumed), which the checkpoint
// saves and which means the same thing at any world size.
//
// The stream is a token shards folder of `lctrain prepare-data` (memory-mapped; shards are one
// stream split into files, so sequences may cross them), a `.bin` file (raw little-endian uint32,
// memory-mapped), or any other file read as whitespace-separated ids.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/token_shards.h"

namespace lctrain {

// Token ids addressed by position across one or more files.
class TokenStream {
 public:
  static TokenStream open(const std::filesystem::path& path);
  explicit TokenStream(std::vector<int64_t> tokens, std::string name = "token list");

  int64_t size() const { return size_; }
  const std::string& name() const { return name_; }
  // The tokenizer's vocabulary size as the shards' manifest records it.
  std::optional<int64_t> declared_vocab_size() const { return declared_vocab_size_; }
  bool in_memory() const { return files_.empty(); }
  // Copies tokens [first, first + count) to `out`.
  void read(int64_t first, int64_t count, int64_t* out) const;

 private:
  TokenStream() = default;

  std::string name_;
  std::vector<data::MappedTokenFile> files_;
  std::vector<int64_t> file_starts_;  // position of each file's first token
  std::vector<int64_t> in_memory_;    // whitespace-separated id files
  int64_t size_ = 0;
  std::optional<int64_t> declared_vocab_size_;
};

class TokenSequences {
 public:
  // `vocab_size`: when set, a token id at or above it is an error naming the data and position.
  TokenSequences(TokenStream stream, int64_t sequence_length, uint64_t seed,
                 std::optional<int64_t> vocab_size = std::nullopt);
  static TokenSequences from_file(const std::filesystem::path& path, int64_t sequence_length,
                                  uint64_t seed, std::optional<int64_t> vocab_size = std::nullopt);

  // Inputs and next-token targets, int64 [sequence_length] each, of global sequence `index`.
  std::pair<torch::Tensor, torch::Tensor> sequence(int64_t index) const;
  // Rows [first, first + count) stacked: int64 [count, sequence_length] each.
  std::pair<torch::Tensor, torch::Tensor> batch(int64_t first, int64_t count) const;
  // Which window of the stream (start token / sequence_length) global sequence `index` reads.
  int64_t window_of(int64_t index) const;

  int64_t windows_per_epoch() const { return windows_; }
  int64_t sequence_length() const { return sequence_length_; }
  const std::string& name() const { return stream_.name(); }

 private:
  void read_window(int64_t window, int64_t* out) const;

  TokenStream stream_;
  int64_t sequence_length_;
  uint64_t seed_;
  std::optional<int64_t> vocab_size_;
  int64_t windows_;
  // The permutation of the epoch read last: consecutive indices share it.
  mutable std::mutex order_mutex_;
  mutable int64_t order_epoch_ = -1;
  mutable torch::Tensor order_;
};

}  // namespace lctrain
