#include "io/streaming_model_writer.h"

#include <fstream>
#include <vector>

#include "io/hf_model_dir.h"
#include "model/llama_weights.h"
#include "util/error.h"

namespace lctrain::io {
namespace {

std::vector<detail::HeaderEntry> plan_of(const LlamaConfig& config, torch::ScalarType dtype) {
  LlamaWeights unused;
  std::vector<detail::HeaderEntry> plan;
  for (const WeightSlot& slot : weight_slots(config, unused)) {
    plan.push_back({slot.name, dtype, slot.shape});
  }
  return plan;
}

// As save_model: weight files of an earlier save go before the new ones are written.
const std::filesystem::path& prepared(const std::filesystem::path& model_dir) {
  std::filesystem::create_directories(model_dir);
  for (const auto& entry : std::filesystem::directory_iterator(model_dir)) {
    const std::string name = entry.path().filename().string();
    const bool weights =
        name.rfind("model", 0) == 0 &&
        (entry.path().extension() == ".safetensors" || name == "model.safetensors.index.json");
    if (weights) std::filesystem::remove(entry.path());
  }
  return model_dir;
}

}  // namespace

StreamingModelWriter::StreamingModelWriter(const std::filesystem::path& model_dir,
                                           LlamaConfig config, torch::ScalarType dtype,
                                           uint64_t max_shard_bytes)
    : model_dir_(model_dir),
      config_(std::move(config)),
      dtype_(dtype),
      weights_(prepared(model_dir), plan_of(config_, dtype), max_shard_bytes) {}

void StreamingModelWriter::write(const std::string& name, const torch::Tensor& tensor) {
  weights_.write(name, tensor.to(torch::kCPU, dtype_).contiguous());
}

void StreamingModelWriter::finish() {
  weights_.finish();
  nlohmann::json json = config_.to_json();
  json["torch_dtype"] = dtype_name(dtype_);
  const auto path = model_dir_ / "config.json";
  std::ofstream stream(path);
  stream << json.dump(2) << "\n";
  LCTRAIN_CHECK(stream.good(), "failed to write {}", path.string());
}

}  // namespace lctrain::io
