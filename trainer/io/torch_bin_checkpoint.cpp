#include "io/torch_bin_checkpoint.h"

#include <memory>
#include <set>

#include "io/torch_pickle.h"
#include "util/error.h"
#include "util/json_fields.h"

namespace lctrain::io {
namespace {

constexpr const char* kSingleName = "pytorch_model.bin";
constexpr const char* kIndexName = "pytorch_model.bin.index.json";

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

// Every tensor of one .bin file; the archive's mapping stays open while any source lives.
void add_file(const std::filesystem::path& path, TensorSources& sources,
              const std::function<bool(const std::string&)>& wanted) {
  const auto tensors =
      std::make_shared<const std::map<std::string, torch::Tensor>>(read_torch_archive(path));
  for (const auto& [name, tensor] : *tensors) {
    if (!wanted(name)) continue;
    TensorSource source;
    source.shape = tensor.sizes().vec();
    source.dtype = tensor.scalar_type();
    source.origin = path.filename().string();
    source.read = [tensors, name = name] { return tensors->at(name); };
    sources[name] = std::move(source);
  }
}

}  // namespace

bool is_torch_bin_dir(const std::filesystem::path& dir) {
  return std::filesystem::exists(dir / kSingleName) || std::filesystem::exists(dir / kIndexName);
}

TensorSources open_torch_bin_dir(const std::filesystem::path& dir) {
  return with_context(fmt::format("checkpoint folder '{}'", dir.string()), [&] {
    TensorSources sources;
    const auto index_path = dir / kIndexName;
    if (!std::filesystem::exists(index_path)) {
      LCTRAIN_CHECK(std::filesystem::exists(dir / kSingleName), "holds neither {} nor {}",
                    kIndexName, kSingleName);
      add_file(dir / kSingleName, sources, [](const std::string&) { return true; });
      return sources;
    }
    const nlohmann::json index = read_json_file(index_path);
    const std::string index_name = index_path.string();
    LCTRAIN_CHECK(
        index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
        "index '{}' has no \"weight_map\" object", index_name);
    std::map<std::string, std::vector<std::string>> names_of_file;
    for (const auto& [name, file] : index["weight_map"].items()) {
      LCTRAIN_CHECK(file.is_string() && is_plain_file_name(file.get<std::string>()),
                    "index '{}': shard of tensor '{}' is not a plain file name in the folder",
                    index_name, name);
      names_of_file[file.get<std::string>()].push_back(name);
    }
    for (const auto& [file, names] : names_of_file) {
      const auto path = dir / file;
      LCTRAIN_CHECK(std::filesystem::exists(path), "shard '{}' listed in index '{}' does not exist",
                    path.string(), index_name);
      const std::set<std::string> listed(names.begin(), names.end());
      add_file(path, sources, [&](const std::string& name) { return listed.count(name) != 0; });
      for (const std::string& name : names) {
        LCTRAIN_CHECK(sources.count(name) != 0,
                      "tensor '{}' listed in index '{}' is missing from shard '{}'", name,
                      index_name, path.string());
      }
    }
    return sources;
  });
}

}  // namespace lctrain::io
