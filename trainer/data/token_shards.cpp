#include "data/token_shards.h"

#include <cstring>
#include <utility>

#include "util/error.h"
#include "util/json_fields.h"

namespace lctrain::data {
namespace fs = std::filesystem;

std::string shard_name(int64_t index) { return fmt::format("shard-{:05d}.bin", index); }

TokenShardWriter::TokenShardWriter(fs::path dir, int bytes_per_token, int64_t tokens_per_shard)
    : dir_(std::move(dir)), bytes_per_token_(bytes_per_token), tokens_per_shard_(tokens_per_shard) {
  LCTRAIN_CHECK(bytes_per_token_ == 2 || bytes_per_token_ == 4, "shards hold 2- or 4-byte tokens");
  LCTRAIN_CHECK(tokens_per_shard_ > 0, "tokens per shard must be positive");
  fs::create_directories(dir_);
}

TokenShardWriter::~TokenShardWriter() {
  if (out_.is_open()) out_.close();
}

void TokenShardWriter::open_next() {
  const fs::path path = dir_ / shard_name(static_cast<int64_t>(shards_.size()));
  out_.open(path, std::ios::binary | std::ios::trunc);
  LCTRAIN_CHECK(out_.good(), "cannot write {}", path.string());
  // The count is patched in when the shard is closed.
  char header[kShardHeaderBytes] = {};
  std::memcpy(header, kShardMagic, 8);
  const uint32_t version = kShardVersion, width = static_cast<uint32_t>(bytes_per_token_);
  std::memcpy(header + 8, &version, 4);
  std::memcpy(header + 12, &width, 4);
  out_.write(header, sizeof header);
  shards_.emplace_back(path.filename().string(), 0);
  in_current_ = 0;
}

void TokenShardWriter::close_current() {
  if (!out_.is_open()) return;
  const uint64_t count = static_cast<uint64_t>(in_current_);
  out_.seekp(16);
  out_.write(reinterpret_cast<const char*>(&count), 8);
  out_.close();
  LCTRAIN_CHECK(!out_.fail(), "cannot finish {}", (dir_ / shards_.back().first).string());
  shards_.back().second = in_current_;
}

void TokenShardWriter::append(const std::vector<int64_t>& tokens) {
  std::vector<char> buffer;
  size_t next = 0;
  while (next < tokens.size()) {
    if (!out_.is_open() || in_current_ == tokens_per_shard_) {
      close_current();
      open_next();
    }
    const size_t take = std::min<size_t>(tokens.size() - next,
                                         static_cast<size_t>(tokens_per_shard_ - in_current_));
    buffer.resize(take * static_cast<size_t>(bytes_per_token_));
    for (size_t i = 0; i < take; ++i) {
      const auto value = static_cast<uint32_t>(tokens[next + i]);
      std::memcpy(buffer.data() + i * bytes_per_token_, &value, bytes_per_token_);  // little-endian
    }
    out_.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    LCTRAIN_CHECK(out_.good(), "cannot write {}", (dir_ / shards_.back().first).string());
    in_current_ += static_cast<int64_t>(take);
    next += take;
  }
}

std::vector<std::pair<std::string, int64_t>> TokenShardWriter::finish() {
  close_current();
  return shards_;
}

MappedTokenFile::MappedTokenFile(fs::path path, size_t data_offset, int width, int64_t count)
    : path_(std::move(path)), width_(width), count_(count) {
  if (count == 0) return;
  // Training reads windows at random offsets; readahead of whole neighbourhoods wastes I/O.
  mapping_ = with_context(fmt::format("token file {}", path_.string()), [&] {
    return MappedFile::open(path_, MappedFile::Access::kReadOnly, MappedFile::Pattern::kRandom);
  });
  tokens_ = mapping_->data() + data_offset;
}

MappedTokenFile MappedTokenFile::shard(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LCTRAIN_CHECK(in.good(), "cannot read token shard {}", path.string());
  char header[kShardHeaderBytes];
  in.read(header, sizeof header);
  LCTRAIN_CHECK(in.gcount() == static_cast<std::streamsize>(sizeof header) &&
                    std::memcmp(header, kShardMagic, 8) == 0,
                "{} is not a token shard (no LCTOKENS header)", path.string());
  uint32_t version = 0, width = 0;
  uint64_t count = 0;
  std::memcpy(&version, header + 8, 4);
  std::memcpy(&width, header + 12, 4);
  std::memcpy(&count, header + 16, 8);
  LCTRAIN_CHECK(version == kShardVersion, "{}: shard version {} (this lctrain reads {})",
                path.string(), version, kShardVersion);
  LCTRAIN_CHECK(width == 2 || width == 4, "{}: {} bytes per token", path.string(), width);
  const uint64_t size = fs::file_size(path);
  LCTRAIN_CHECK(
      count <= (size - kShardHeaderBytes) / width && size == kShardHeaderBytes + count * width,
      "{}: {} bytes, but its header promises {} tokens ({} bytes): truncated?", path.string(), size,
      count, kShardHeaderBytes + count * width);
  return MappedTokenFile(path, kShardHeaderBytes, static_cast<int>(width),
                         static_cast<int64_t>(count));
}

MappedTokenFile MappedTokenFile::raw_uint32(const fs::path& path) {
  LCTRAIN_CHECK(fs::is_regular_file(path), "token file {} does not exist", path.string());
  const auto bytes = fs::file_size(path);
  LCTRAIN_CHECK(bytes % 4 == 0 && bytes > 0, "{}: {} bytes is not a whole number of uint32 tokens",
                path.string(), bytes);
  return MappedTokenFile(path, 0, 4, static_cast<int64_t>(bytes / 4));
}

void MappedTokenFile::read(int64_t first, int64_t count, int64_t* out) const {
  LCTRAIN_CHECK(first >= 0 && count >= 0 && first + count <= count_,
                "{}: tokens [{}, {}) are outside its {} tokens", path_.string(), first,
                first + count, count_);
  const unsigned char* from = tokens_ + static_cast<size_t>(first) * static_cast<size_t>(width_);
  for (int64_t i = 0; i < count; ++i, from += width_) {
    if (width_ == 2) {
      uint16_t value;
      std::memcpy(&value, from, 2);  // little-endian, as written
      out[i] = value;
    } else {
      uint32_t value;
      std::memcpy(&value, from, 4);
      out[i] = value;
    }
  }
}

std::vector<fs::path> list_token_shards(const fs::path& dir) {
  const fs::path manifest_path = dir / "manifest.json";
  const auto manifest = read_json_file(manifest_path);
  LCTRAIN_CHECK(manifest.value("format", "") == "lctrain-token-shards",
                "{}: not a token shards manifest", manifest_path.string());
  LCTRAIN_CHECK(manifest.contains("shards") && manifest.at("shards").is_array(),
                "{}: 'shards' must be a list", manifest_path.string());
  // The vocabulary size is what the trainer checks the model against; a wrong one must not pass.
  if (manifest.contains("vocab_size")) {
    const auto& vocab_size = manifest.at("vocab_size");
    LCTRAIN_CHECK(vocab_size.is_number_integer() && vocab_size.get<int64_t>() > 0,
                  "{}: 'vocab_size' must be a positive integer, got {}", manifest_path.string(),
                  vocab_size.dump());
  }
  std::vector<fs::path> paths;
  for (const auto& shard : manifest.at("shards")) {
    LCTRAIN_CHECK(shard.is_object() && shard.contains("name") && shard.at("name").is_string(),
                  "{}: every entry of 'shards' needs a 'name'", manifest_path.string());
    const std::string name = shard.at("name").get<std::string>();
    LCTRAIN_CHECK(name.find('/') == std::string::npos && name != ".." && !name.empty(),
                  "{}: shard name '{}' must be a file in the same folder", manifest_path.string(),
                  name);
    paths.push_back(dir / name);
  }
  LCTRAIN_CHECK(!paths.empty(), "{}: the manifest lists no shards", dir.string());
  return paths;
}

torch::Tensor read_token_shard(const fs::path& path) {
  const MappedTokenFile shard = MappedTokenFile::shard(path);
  auto tokens = torch::empty({shard.size()}, torch::kInt64);
  shard.read(0, shard.size(), tokens.data_ptr<int64_t>());
  return tokens;
}

torch::Tensor read_token_shards(const fs::path& dir) {
  std::vector<torch::Tensor> parts;
  for (const auto& path : list_token_shards(dir)) parts.push_back(read_token_shard(path));
  return torch::cat(parts);
}

}  // namespace lctrain::data
