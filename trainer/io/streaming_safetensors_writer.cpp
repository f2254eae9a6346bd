#include "io/streaming_safetensors_writer.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace lctrain::io {
namespace {

uint64_t byte_size(const detail::HeaderEntry& entry) {
  uint64_t numel = 1;
  for (const int64_t size : entry.shape) numel *= static_cast<uint64_t>(size);
  return numel * c10::elementSize(entry.dtype);
}

std::string context_of(const std::filesystem::path& dir) {
  return fmt::format("writing checkpoint folder '{}'", dir.string());
}

}  // namespace

StreamingSafetensorsWriter::StreamingSafetensorsWriter(std::filesystem::path dir,
                                                       std::vector<detail::HeaderEntry> plan,
                                                       uint64_t max_shard_bytes)
    : dir_(std::move(dir)), plan_(std::move(plan)) {
  with_context(context_of(dir_), [&] {
    LCTRAIN_CHECK(max_shard_bytes > 0, "the maximum shard size must be positive");
    (void)detail::safetensors_header(plan_, {});  // names and dtypes, before any file exists
    // Greedy, as write_sharded_safetensors (and transformers) plan it.
    shards_.push_back({});
    uint64_t shard_bytes = 0;
    for (size_t index = 0; index < plan_.size(); ++index) {
      const uint64_t bytes = byte_size(plan_[index]);
      if (shards_.back().end > shards_.back().first && shard_bytes + bytes > max_shard_bytes) {
        shards_.push_back({"", index, index});
        shard_bytes = 0;
      }
      shards_.back().end = index + 1;
      shard_bytes += bytes;
      total_bytes_ += bytes;
    }
    for (size_t index = 0; index < shards_.size(); ++index) {
      shards_[index].file = shards_.size() == 1 ? "model.safetensors"
                                                : fmt::format("model-{:05d}-of-{:05d}.safetensors",
                                                              index + 1, shards_.size());
    }
    std::error_code error;
    std::filesystem::create_directories(dir_, error);
    LCTRAIN_CHECK(!error, "cannot create the folder: {}", error.message());
  });
}

StreamingSafetensorsWriter::~StreamingSafetensorsWriter() = default;

void StreamingSafetensorsWriter::write(const std::string& name, const torch::Tensor& tensor) {
  with_context(context_of(dir_), [&] {
    LCTRAIN_CHECK(next_ < plan_.size(), "tensor '{}' comes after the last planned tensor", name);
    const detail::HeaderEntry& planned = plan_[next_];
    LCTRAIN_CHECK(planned.name == name && planned.dtype == tensor.scalar_type() &&
                      planned.shape == tensor.sizes().vec(),
                  "tensor '{}' ({} [{}]) comes where '{}' ({} [{}]) was planned", name,
                  c10::toString(tensor.scalar_type()), fmt::join(tensor.sizes(), ", "),
                  planned.name, c10::toString(planned.dtype), fmt::join(planned.shape, ", "));
    const Shard& shard = shards_[shard_];
    if (next_ == shard.first) {
      const std::vector<detail::HeaderEntry> entries(plan_.begin() + shard.first,
                                                     plan_.begin() + shard.end);
      const std::string header = detail::safetensors_header(entries, {{"format", "pt"}});
      out_ = std::make_unique<detail::AtomicFileWriter>(dir_ / shard.file);
      out_->write(header.data(), header.size());
    }
    const torch::Tensor data = tensor.detach().to(torch::kCPU).contiguous();
    out_->write(data.data_ptr(), tensor_bytes(data));
    ++next_;
    if (next_ == shard.end) {
      out_->commit();
      out_.reset();
      ++shard_;
    }
  });
}

void StreamingSafetensorsWriter::finish() {
  with_context(context_of(dir_), [&] {
    LCTRAIN_CHECK(next_ == plan_.size(), "finished after {} of {} tensors (next: '{}')", next_,
                  plan_.size(), next_ < plan_.size() ? plan_[next_].name : "");
    if (plan_.empty()) {  // as write_sharded_safetensors: one empty model.safetensors
      const std::string header = detail::safetensors_header({}, {{"format", "pt"}});
      detail::AtomicFileWriter empty(dir_ / shards_.front().file);
      empty.write(header.data(), header.size());
      empty.commit();
    }
    if (shards_.size() == 1) return;
    nlohmann::json weight_map = nlohmann::json::object();
    for (const Shard& shard : shards_) {
      for (size_t index = shard.first; index < shard.end; ++index) {
        weight_map[plan_[index].name] = shard.file;
      }
    }
    // The index goes last so an interrupted export never names shards that are not there.
    const nlohmann::json index = {{"metadata", {{"total_size", total_bytes_}}},
                                  {"weight_map", weight_map}};
    const std::string text = index.dump(2) + "\n";
    detail::AtomicFileWriter out(dir_ / "model.safetensors.index.json");
    out.write(text.data(), text.size());
    out.commit();
  });
}

}  // namespace lctrain::io
