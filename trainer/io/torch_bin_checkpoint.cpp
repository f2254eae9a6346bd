#include "io/torch_bin_checkpoint.h"

#include <cstdlib>
#include <memory>
#include <set>

#include "io/torch_pickle.h"
#include "util/error.h"
#include "util/json_fields.h"
#include "util/mapped_file.h"

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
    source.release = [tensors, name = name] { release_mapped_tensor(tensors->at(name)); };
    if (tensor.is_contiguous()) {
      source.read_range = [tensors, name = name](int64_t begin, torch::Tensor& out) {
        read_mapped_range(tensors->at(name), begin, out);
      };
    }
    sources[name] = std::move(source);
  }
}

}  // namespace

void read_mapped_range(const torch::Tensor& stored, int64_t begin, torch::Tensor& out) {
  LCTRAIN_CHECK(stored.is_contiguous() && begin >= 0 && begin + out.numel() <= stored.numel(),
                "internal: elements [{}, {}) of a {}-element tensor", begin, begin + out.numel(),
                stored.numel());
  const torch::Tensor range = stored.reshape({-1}).narrow(0, begin, out.numel());
  out.copy_(range);
  release_mapped_pages(range.data_ptr(), static_cast<uint64_t>(range.numel()) *
                                             static_cast<uint64_t>(range.element_size()));
}

void release_mapped_tensor(const torch::Tensor& stored) {
  if (stored.numel() == 0) return;
  int64_t extent = 1;  // elements from the first to the last one the view reaches
  for (int64_t dim = 0; dim < stored.dim(); ++dim) {
    extent += (stored.size(dim) - 1) * std::abs(stored.stride(dim));
  }
  release_mapped_pages(stored.data_ptr(), static_cast<uint64_t>(extent) *
                                              static_cast<uint64_t>(stored.element_size()));
}

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
