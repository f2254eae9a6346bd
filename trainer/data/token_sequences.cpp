#include "data/token_sequences.h"

#include <fstream>

#include "data/token_shards.h"
#include "io/token_ids_file.h"
#include "util/error.h"

namespace lctrain {

TokenSequences::TokenSequences(torch::Tensor tokens, int64_t sequence_length, uint64_t seed)
    : tokens_(tokens.to(torch::kInt64).contiguous()),
      sequence_length_(sequence_length),
      seed_(seed) {
  LCTRAIN_CHECK(sequence_length_ > 0, "sequence length must be positive");
  // Each window needs sequence_length inputs plus one more token for the last target.
  windows_ = (tokens_.numel() - 1) / sequence_length_;
  LCTRAIN_CHECK(windows_ > 0, "the token stream holds {} tokens, fewer than one sequence of {} + 1",
                tokens_.numel(), sequence_length_);
  max_token_ = tokens_.max().item<int64_t>();
}

TokenSequences TokenSequences::from_file(const std::filesystem::path& path, int64_t sequence_length,
                                         uint64_t seed) {
  if (std::filesystem::is_directory(path)) {  // token shards of `lctrain prepare-data`
    return TokenSequences(data::read_token_shards(path), sequence_length, seed);
  }
  LCTRAIN_CHECK(std::filesystem::is_regular_file(path), "token file {} does not exist",
                path.string());
  if (path.extension() != ".bin") {
    const std::vector<int64_t> ids = io::read_token_ids(path);
    return TokenSequences(torch::tensor(ids, torch::kInt64), sequence_length, seed);
  }
  const auto bytes = std::filesystem::file_size(path);
  LCTRAIN_CHECK(bytes % 4 == 0 && bytes > 0, "{}: {} bytes is not a whole number of uint32 tokens",
                path.string(), bytes);
  auto raw = torch::empty({static_cast<int64_t>(bytes / 4)}, torch::kInt32);
  std::ifstream stream(path, std::ios::binary);
  stream.read(reinterpret_cast<char*>(raw.data_ptr<int32_t>()),
              static_cast<std::streamsize>(bytes));
  LCTRAIN_CHECK(stream.good(), "{}: read failed", path.string());
  LCTRAIN_CHECK(raw.min().item<int32_t>() >= 0, "{}: token ids above 2^31 are not supported",
                path.string());
  return TokenSequences(raw, sequence_length, seed);
}

std::pair<torch::Tensor, torch::Tensor> TokenSequences::sequence(int64_t index) const {
  LCTRAIN_CHECK(index >= 0, "sequence index must be >= 0");
  // A fresh permutation of the windows every epoch, seeded by (seed, epoch).
  const int64_t epoch = index / windows_;
  auto generator =
      at::detail::createCPUGenerator(seed_ * 1000003ULL + static_cast<uint64_t>(epoch));
  const auto order = torch::randperm(windows_, generator, torch::kInt64);
  const int64_t window = order[index % windows_].item<int64_t>();
  const auto span = tokens_.narrow(0, window * sequence_length_, sequence_length_ + 1);
  return {span.narrow(0, 0, sequence_length_), span.narrow(0, 1, sequence_length_)};
}

std::pair<torch::Tensor, torch::Tensor> TokenSequences::batch(int64_t first, int64_t count) const {
  std::vector<torch::Tensor> inputs, targets;
  for (int64_t row = 0; row < count; ++row) {
    auto [input, target] = sequence(first + row);
    inputs.push_back(input);
    targets.push_back(target);
  }
  return {torch::stack(inputs), torch::stack(targets)};
}

}  // namespace lctrain
