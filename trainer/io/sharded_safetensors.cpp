// Hugging Face checkpoint weights across one or many safetensors files: index validation,
// greedy shard planning, and shard-size parsing.
#include "io/sharded_safetensors.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <system_error>

#include "util/error.h"

namespace lctrain::io {
namespace {

using Json = nlohmann::json;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

// A shard name from the index must stay inside the folder: no separators, no "." or "..".
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

std::string read_index(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  LCTRAIN_CHECK(stream.is_open(), "cannot open index '{}': {}", path.string(),
                std::strerror(errno));
  std::ostringstream text;
  text << stream.rdbuf();
  LCTRAIN_CHECK(!stream.bad(), "cannot read index '{}': {}", path.string(), std::strerror(errno));
  return text.str();
}

bool path_exists(const std::filesystem::path& path) {
  std::error_code ignored;
  return std::filesystem::exists(path, ignored);
}

void check_directory(const std::filesystem::path& dir) {
  std::error_code error;
  const auto status = std::filesystem::status(dir, error);
  LCTRAIN_CHECK(status.type() != std::filesystem::file_type::not_found, "does not exist");
  LCTRAIN_CHECK(!error, "cannot access: {}", error.message());
  LCTRAIN_CHECK(status.type() == std::filesystem::file_type::directory, "is not a directory");
}

}  // namespace

ShardedSafetensors ShardedSafetensors::open_dir(const std::filesystem::path& dir) {
  return with_context(fmt::format("checkpoint folder '{}'", dir.string()), [&] {
    check_directory(dir);
    ShardedSafetensors result;
    result.dir_ = dir;
    const std::filesystem::path index_path = dir / kIndexName;
    if (!path_exists(index_path)) {
      LCTRAIN_CHECK(path_exists(dir / kSingleName), "holds neither {} nor {}", kIndexName,
                    kSingleName);
      result.shards_.push_back(SafetensorsFile::open(dir / kSingleName));
      for (const std::string& name : result.shards_.front().names()) {
        result.shard_index_.emplace(name, 0);
      }
      return result;
    }

    const std::string index_name = index_path.string();
    Json index;
    try {
      index = Json::parse(read_index(index_path));
    } catch (const Json::exception& error) {
      throw Error("index '{}' is not valid JSON: {}", index_name, error.what());
    }
    LCTRAIN_CHECK(index.is_object(), "index '{}' is not a JSON object", index_name);
    const auto weight_map = index.find("weight_map");
    LCTRAIN_CHECK(weight_map != index.end() && weight_map->is_object(),
                  "index '{}' has no \"weight_map\" object", index_name);
    std::map<std::string, size_t> slot_of_file;
    for (const auto& [name, file] : weight_map->items()) {
      LCTRAIN_CHECK(file.is_string(),
                    "index '{}': weight_map entry for tensor '{}' is not a string", index_name,
                    name);
      const std::string& shard = file.get_ref<const std::string&>();
      LCTRAIN_CHECK(is_plain_file_name(shard),
                    "index '{}': shard '{}' of tensor '{}' is not a plain file name in the folder",
                    index_name, shard, name);
      auto slot = slot_of_file.find(shard);
      if (slot == slot_of_file.end()) {
        LCTRAIN_CHECK(path_exists(dir / shard), "shard '{}' listed in index '{}' does not exist",
                      (dir / shard).string(), index_name);
        result.shards_.push_back(SafetensorsFile::open(dir / shard));
        slot = slot_of_file.emplace(shard, result.shards_.size() - 1).first;
      }
      LCTRAIN_CHECK(result.shards_[slot->second].contains(name),
                    "tensor '{}' listed in index '{}' is missing from shard '{}'", name, index_name,
                    (dir / shard).string());
      result.shard_index_.emplace(name, slot->second);
    }
    return result;
  });
}

std::vector<std::string> ShardedSafetensors::names() const {
  std::vector<std::string> result;
  result.reserve(shard_index_.size());
  for (const auto& entry : shard_index_) result.push_back(entry.first);
  return result;
}

bool ShardedSafetensors::contains(const std::string& name) const {
  return shard_index_.count(name) > 0;
}

const SafetensorsFile& ShardedSafetensors::shard_of(const std::string& name) const {
  const auto found = shard_index_.find(name);
  LCTRAIN_CHECK(found != shard_index_.end(), "tensor '{}' not found in checkpoint folder '{}'",
                name, dir_.string());
  return shards_[found->second];
}

const TensorInfo& ShardedSafetensors::info(const std::string& name) const {
  return shard_of(name).info(name);
}

torch::Tensor ShardedSafetensors::tensor(const std::string& name) const {
  return shard_of(name).tensor(name);
}

void ShardedSafetensors::read_range(const std::string& name, int64_t begin,
                                    torch::Tensor& out) const {
  shard_of(name).read_range(name, begin, out);
}

std::filesystem::path ShardedSafetensors::file_of(const std::string& name) const {
  return shard_of(name).path();
}

void write_sharded_safetensors(const std::filesystem::path& dir,
                               const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                               uint64_t max_shard_bytes) {
  with_context(fmt::format("writing checkpoint folder '{}'", dir.string()), [&] {
    LCTRAIN_CHECK(max_shard_bytes > 0, "the maximum shard size must be positive");
    // Per-file checks cannot see a name repeated in two shards, which would corrupt the index.
    std::set<std::string> seen;
    for (const auto& entry : tensors) {
      LCTRAIN_CHECK(seen.insert(entry.first).second, "duplicate tensor name '{}'", entry.first);
    }

    // Greedy, as transformers does: a new shard when the next tensor would overflow this one.
    std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shards(1);
    uint64_t shard_bytes = 0;
    uint64_t total_bytes = 0;
    for (const auto& entry : tensors) {
      const uint64_t bytes = tensor_bytes(entry.second);
      if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes) {
        shards.emplace_back();
        shard_bytes = 0;
      }
      shards.back().push_back(entry);
      shard_bytes += bytes;
      total_bytes += bytes;
    }

    std::error_code error;
    std::filesystem::create_directories(dir, error);
    LCTRAIN_CHECK(!error, "cannot create the folder: {}", error.message());
    const std::map<std::string, std::string> metadata{{"format", "pt"}};
    if (shards.size() == 1) {
      write_safetensors(dir / kSingleName, tensors, metadata);
      return;
    }
    Json weight_map = Json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string file =
          fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
      write_safetensors(dir / file, shards[i], metadata);
      for (const auto& entry : shards[i]) weight_map[entry.first] = file;
    }
    // The index goes last so an interrupted export never names shards that are not there.
    const Json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    const std::string text = index.dump(2) + "\n";
    detail::AtomicFileWriter out(dir / kIndexName);
    out.write(text.data(), text.size());
    out.commit();
  });
}

uint64_t parse_byte_size(const std::string& text) {
  const auto fail = [&] {
    return Error("invalid byte size '{}' (expected e.g. 5GB, 500MB, 2GiB or 123)", text);
  };
  size_t position = text.find_first_not_of(" \t");
  if (position == std::string::npos) throw fail();
  uint64_t number = 0;
  const size_t digits_begin = position;
  for (; position < text.size() && std::isdigit(static_cast<unsigned char>(text[position]));
       ++position) {
    const bool fits = !__builtin_mul_overflow(number, 10, &number) &&
                      !__builtin_add_overflow(number, text[position] - '0', &number);
    if (!fits) throw fail();
  }
  if (position == digits_begin) throw fail();

  // The unit may follow a space ("5 GB"), but may not contain one.
  const size_t unit_begin = text.find_first_not_of(" \t", position);
  const size_t unit_end = text.find_last_not_of(" \t");
  std::string unit;
  if (unit_begin != std::string::npos) unit = text.substr(unit_begin, unit_end + 1 - unit_begin);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::map<std::string, uint64_t> kUnits = {{"", 1},
                                                         {"B", 1},
                                                         {"KB", 1'000},
                                                         {"MB", 1'000'000},
                                                         {"GB", 1'000'000'000},
                                                         {"TB", 1'000'000'000'000},
                                                         {"KIB", uint64_t{1} << 10},
                                                         {"MIB", uint64_t{1} << 20},
                                                         {"GIB", uint64_t{1} << 30},
                                                         {"TIB", uint64_t{1} << 40}};
  const auto found = kUnits.find(unit);
  if (found == kUnits.end()) throw fail();
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(number, found->second, &bytes)) throw fail();
  return bytes;
}

}  // namespace lctrain::io
