#include "data/token_shards.h"

#include <cstring>

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

torch::Tensor read_token_shard(const fs::path& path) {
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
  const uint64_t expected = kShardHeaderBytes + count * width;
  LCTRAIN_CHECK(fs::file_size(path) == expected,
                "{}: {} bytes, but its header promises {} tokens ({} bytes): truncated?",
                path.string(), fs::file_size(path), count, expected);
  const auto raw =
      torch::empty({static_cast<int64_t>(count)}, width == 2 ? torch::kInt16 : torch::kInt32);
  in.read(static_cast<char*>(raw.data_ptr()), static_cast<std::streamsize>(count * width));
  LCTRAIN_CHECK(in.good() || count == 0, "{}: read failed", path.string());
  // uint16 travels in int16: undo the sign.
  return width == 2 ? raw.to(torch::kInt32).bitwise_and(0xffff).to(torch::kInt64)
                    : raw.to(torch::kInt64).bitwise_and(static_cast<int64_t>(0xffffffff));
}

torch::Tensor read_token_shards(const fs::path& dir) {
  const auto manifest = read_json_file(dir / "manifest.json");
  LCTRAIN_CHECK(manifest.value("format", "") == "lctrain-token-shards",
                "{}: not a token shards manifest", (dir / "manifest.json").string());
  std::vector<torch::Tensor> parts;
  for (const auto& shard : manifest.at("shards")) {
    parts.push_back(read_token_shard(dir / shard.at("name").get<std::string>()));
  }
  LCTRAIN_CHECK(!parts.empty(), "{}: the manifest lists no shards", dir.string());
  return torch::cat(parts);
}

}  // namespace lctrain::data
