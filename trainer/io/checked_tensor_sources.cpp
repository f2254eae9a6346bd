#include "io/checked_tensor_sources.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/hf_model_dir.h"
#include "io/meta_checkpoint.h"
#include "io/sharded_safetensors.h"
#include "model/llama_weights.h"
#include "util/error.h"

namespace lctrain::io {
namespace {

std::string shape_text(c10::IntArrayRef shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// Tensors Hugging Face checkpoints may carry that are not weights of ours (older transformers
// saved the rotary inv_freq buffer), or that tying makes redundant.
bool ignorable(const std::string& name, const LlamaConfig& config) {
  const std::string suffix = "rotary_emb.inv_freq";
  if (name.size() >= suffix.size() &&
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return true;
  }
  return config.tie_word_embeddings && name == "lm_head.weight";
}

bool is_floating(torch::ScalarType dtype) {
  return dtype == torch::kFloat32 || dtype == torch::kFloat16 || dtype == torch::kBFloat16 ||
         dtype == torch::kFloat64;
}

// The safetensors tensors in the shape every format is checked in. Their reads are owned copies;
// their ranges are read straight from the mapped file.
TensorSources safetensors_sources(const std::filesystem::path& model_dir) {
  const auto checkpoint =
      std::make_shared<const ShardedSafetensors>(ShardedSafetensors::open_dir(model_dir));
  TensorSources sources;
  for (const std::string& name : checkpoint->names()) {
    const TensorInfo& info = checkpoint->info(name);
    TensorSource source;
    source.shape = info.shape;
    source.dtype = info.dtype;
    source.origin = checkpoint->file_of(name).filename().string();
    source.read = [checkpoint, name] { return checkpoint->tensor(name); };
    source.read_range = [checkpoint, name](int64_t begin, torch::Tensor& out) {
      checkpoint->read_range(name, begin, out);
    };
    sources.emplace(name, std::move(source));
  }
  return sources;
}

}  // namespace

TensorSources open_checked_sources(const std::filesystem::path& model_dir,
                                   const LlamaConfig& config) {
  const CheckpointFormat format = detect_format(model_dir);
  TensorSources checkpoint =
      format == CheckpointFormat::kMeta       ? open_meta_checkpoint(model_dir, config)
      : format == CheckpointFormat::kTorchBin ? open_torch_bin_dir(model_dir)
                                              : safetensors_sources(model_dir);
  const std::string config_name = format == CheckpointFormat::kMeta ? "params.json" : "config.json";
  LlamaWeights weights;
  const std::vector<WeightSlot> slots = weight_slots(config, weights);

  std::set<std::string> expected;
  std::vector<std::string> missing;
  for (const WeightSlot& slot : slots) {
    expected.insert(slot.name);
    if (checkpoint.count(slot.name) == 0) missing.push_back(slot.name);
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, source] : checkpoint) {
    if (expected.count(name) == 0 && !ignorable(name, config)) unexpected.push_back(name);
  }
  const auto listed = [](const std::vector<std::string>& names) {
    const size_t shown = std::min<size_t>(names.size(), 8);
    std::string text = fmt::format("{}", fmt::join(names.begin(), names.begin() + shown, ", "));
    if (names.size() > shown) text += fmt::format(" (and {} more)", names.size() - shown);
    return text;
  };
  LCTRAIN_CHECK(missing.empty(), "{}: checkpoint is missing {} tensor(s) {} requires: {}",
                model_dir.string(), missing.size(), config_name, listed(missing));
  LCTRAIN_CHECK(unexpected.empty(),
                "{}: checkpoint holds {} tensor(s) a LLaMA with this {} does not have: {}",
                model_dir.string(), unexpected.size(), config_name, listed(unexpected));

  for (const WeightSlot& slot : slots) {
    const TensorSource& source = checkpoint.at(slot.name);
    LCTRAIN_CHECK(source.shape == slot.shape, "{}: tensor '{}' in {} has shape {}, {} implies {}",
                  model_dir.string(), slot.name, source.origin, shape_text(source.shape),
                  config_name, shape_text(slot.shape));
    LCTRAIN_CHECK(is_floating(source.dtype), "{}: tensor '{}' in {} has non-floating dtype {}",
                  model_dir.string(), slot.name, source.origin, c10::toString(source.dtype));
  }
  return checkpoint;
}

}  // namespace lctrain::io
