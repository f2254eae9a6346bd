// TokenSequences: fixed-length training sequences cut from a token stream, in a seeded shuffled
// order that is a pure function of the global sequence index (so resume needs only a counter).
// Until the token-shard format lands, the stream comes from one token file: `.bin` (raw
// little-endian uint32) or anything else read as whitespace-separated ids.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <utility>

namespace lctrain {

class TokenSequences {
 public:
  TokenSequences(torch::Tensor tokens, int64_t sequence_length, uint64_t seed);
  static TokenSequences from_file(const std::filesystem::path& path, int64_t sequence_length,
                                  uint64_t seed);

  // Inputs and next-token targets, int64 [sequence_length] each, of global sequence `index`.
  std::pair<torch::Tensor, torch::Tensor> sequence(int64_t index) const;
  // Rows [first, first + count) stacked: int64 [count, sequence_length] each.
  std::pair<torch::Tensor, torch::Tensor> batch(int64_t first, int64_t count) const;

  int64_t windows_per_epoch() const { return windows_; }
  int64_t max_token() const { return max_token_; }

 private:
  torch::Tensor tokens_;  // int64 [N]
  int64_t sequence_length_;
  uint64_t seed_;
  int64_t windows_;
  int64_t max_token_ = 0;
};

}  // namespace lctrain
