#include "data/token_sequences.h"

#include <algorithm>

#include "io/token_ids_file.h"
#include "util/error.h"
#include "util/json_fields.h"

namespace lctrain {
namespace fs = std::filesystem;

TokenStream TokenStream::open(const fs::path& path) {
  TokenStream stream;
  stream.name_ = path.string();
  if (fs::is_directory(path)) {  // token shards of `lctrain prepare-data`
    for (const auto& shard : data::list_token_shards(path)) {
      stream.files_.push_back(data::MappedTokenFile::shard(shard));
    }
    const auto manifest = read_json_file(path / "manifest.json");
    if (manifest.contains("vocab_size") && manifest.at("vocab_size").is_number_integer()) {
      stream.declared_vocab_size_ = manifest.at("vocab_size").get<int64_t>();
    }
  } else if (path.extension() == ".bin") {
    stream.files_.push_back(data::MappedTokenFile::raw_uint32(path));
  } else {
    LCTRAIN_CHECK(fs::is_regular_file(path), "token file {} does not exist", path.string());
    stream.in_memory_ = io::read_token_ids(path);
    stream.size_ = static_cast<int64_t>(stream.in_memory_.size());
    return stream;
  }
  for (const auto& file : stream.files_) {
    stream.file_starts_.push_back(stream.size_);
    stream.size_ += file.size();
  }
  return stream;
}

TokenStream::TokenStream(std::vector<int64_t> tokens, std::string name)
    : name_(std::move(name)), in_memory_(std::move(tokens)) {
  size_ = static_cast<int64_t>(in_memory_.size());
}

void TokenStream::read(int64_t first, int64_t count, int64_t* out) const {
  LCTRAIN_CHECK(first >= 0 && count >= 0 && first + count <= size_,
                "{}: tokens [{}, {}) are outside its {} tokens", name_, first, first + count,
                size_);
  if (files_.empty()) {
    std::copy_n(in_memory_.begin() + first, count, out);
    return;
  }
  // The file holding `first`, then onwards across file boundaries.
  auto file = static_cast<size_t>(
      std::upper_bound(file_starts_.begin(), file_starts_.end(), first) - file_starts_.begin() - 1);
  while (count > 0) {
    const int64_t offset = first - file_starts_[file];
    const int64_t take = std::min(count, files_[file].size() - offset);
    files_[file].read(offset, take, out);
    first += take;
    out += take;
    count -= take;
    ++file;
  }
}

TokenSequences::TokenSequences(TokenStream stream, int64_t sequence_length, uint64_t seed,
                               std::optional<int64_t> vocab_size)
    : stream_(std::move(stream)),
      sequence_length_(sequence_length),
      seed_(seed),
      vocab_size_(vocab_size) {
  LCTRAIN_CHECK(sequence_length_ > 0, "sequence length must be positive");
  // Each window needs sequence_length inputs plus one more token for the last target.
  windows_ = stream_.size() > 0 ? (stream_.size() - 1) / sequence_length_ : 0;
  LCTRAIN_CHECK(windows_ > 0,
                "{}: the token stream holds {} tokens, fewer than one sequence of {} + 1",
                stream_.name(), stream_.size(), sequence_length_);
  if (!vocab_size_) return;
  // Refuse a mismatched tokenizer before training starts, not at the first bad window. Mapped
  // shards carry their tokenizer's size; small in-memory lists are scanned. Every window read is
  // checked as well.
  const auto declared = stream_.declared_vocab_size();
  LCTRAIN_CHECK(!declared || *declared <= *vocab_size_,
                "{}: tokenized with a vocabulary of {} (manifest.json), but the model's holds {}",
                stream_.name(), *declared, *vocab_size_);
  if (stream_.in_memory()) {
    std::vector<int64_t> all(static_cast<size_t>(stream_.size()));
    stream_.read(0, stream_.size(), all.data());
    const auto bad = std::find_if(all.begin(), all.end(),
                                  [&](int64_t id) { return id < 0 || id >= *vocab_size_; });
    LCTRAIN_CHECK(bad == all.end(),
                  "{}: token id {} at position {} is outside the model's vocabulary of {}",
                  stream_.name(), bad == all.end() ? 0 : *bad, bad - all.begin(), *vocab_size_);
  }
}

TokenSequences TokenSequences::from_file(const fs::path& path, int64_t sequence_length,
                                         uint64_t seed, std::optional<int64_t> vocab_size) {
  return TokenSequences(TokenStream::open(path), sequence_length, seed, vocab_size);
}

int64_t TokenSequences::window_of(int64_t index) const {
  LCTRAIN_CHECK(index >= 0, "sequence index must be >= 0");
  // A fresh permutation of the windows every epoch, seeded by (seed, epoch).
  const int64_t epoch = index / windows_;
  const std::lock_guard<std::mutex> lock(order_mutex_);
  if (epoch != order_epoch_) {
    auto generator =
        at::detail::createCPUGenerator(seed_ * 1000003ULL + static_cast<uint64_t>(epoch));
    order_ = torch::randperm(windows_, generator, torch::kInt64);
    order_epoch_ = epoch;
  }
  return order_.data_ptr<int64_t>()[index % windows_];
}

void TokenSequences::read_window(int64_t window, int64_t* out) const {
  const int64_t first = window * sequence_length_;
  stream_.read(first, sequence_length_ + 1, out);
  if (!vocab_size_) return;
  for (int64_t i = 0; i <= sequence_length_; ++i) {
    LCTRAIN_CHECK(out[i] >= 0 && out[i] < *vocab_size_,
                  "{}: token id {} at position {} is outside the model's vocabulary of {}",
                  stream_.name(), out[i], first + i, *vocab_size_);
  }
}

std::pair<torch::Tensor, torch::Tensor> TokenSequences::sequence(int64_t index) const {
  auto span = torch::empty({sequence_length_ + 1}, torch::kInt64);
  read_window(window_of(index), span.data_ptr<int64_t>());
  return {span.narrow(0, 0, sequence_length_), span.narrow(0, 1, sequence_length_)};
}

std::pair<torch::Tensor, torch::Tensor> TokenSequences::batch(int64_t first, int64_t count) const {
  auto spans = torch::empty({count, sequence_length_ + 1}, torch::kInt64);
  for (int64_t row = 0; row < count; ++row) {
    read_window(window_of(first + row), spans[row].data_ptr<int64_t>());
  }
  return {spans.narrow(1, 0, sequence_length_).contiguous(),
          spans.narrow(1, 1, sequence_length_).contiguous()};
}

}  // namespace lctrain
