#include "io/hf_model_dir.h"

#include <fstream>
#include <set>

#include "io/meta_checkpoint.h"
#include "io/model_folder_swap.h"
#include "io/safetensors.h"
#include "io/sharded_safetensors.h"
#include "io/torch_bin_checkpoint.h"
#include "util/error.h"
#include "util/logging.h"

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

// The safetensors tensors in the shape every format is checked in. Their reads are owned copies.
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
    sources.emplace(name, std::move(source));
  }
  return sources;
}

}  // namespace

CheckpointFormat detect_format(const std::filesystem::path& model_dir) {
  namespace fs = std::filesystem;
  LCTRAIN_CHECK(fs::is_directory(model_dir), "model folder {} does not exist", model_dir.string());
  const bool has_config = fs::exists(model_dir / "config.json");
  const bool has_safetensors = fs::exists(model_dir / "model.safetensors") ||
                               fs::exists(model_dir / "model.safetensors.index.json");
  if (has_config && has_safetensors) return CheckpointFormat::kSafetensors;
  if (has_config && is_torch_bin_dir(model_dir)) return CheckpointFormat::kTorchBin;
  if (is_meta_checkpoint_dir(model_dir)) return CheckpointFormat::kMeta;
  // With config.json alone, the safetensors reader names the weight files it looked for.
  LCTRAIN_CHECK(
      has_config,
      "{} has no config.json (nor params.json + consolidated.00.pth of a Meta checkpoint)",
      model_dir.string());
  return CheckpointFormat::kSafetensors;
}

std::string format_name(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::kSafetensors:
      return "safetensors";
    case CheckpointFormat::kTorchBin:
      return "hf-bin";
    case CheckpointFormat::kMeta:
      return "meta";
  }
  return "unknown";
}

LlamaConfig load_config(const std::filesystem::path& model_dir) {
  if (detect_format(model_dir) == CheckpointFormat::kMeta) return load_meta_config(model_dir);
  return LlamaConfig::from_file(model_dir / "config.json");
}

LlamaWeights load_weights(const std::filesystem::path& model_dir, const LlamaConfig& config,
                          torch::ScalarType dtype, const torch::Device& device) {
  const CheckpointFormat format = detect_format(model_dir);
  const TensorSources checkpoint =
      format == CheckpointFormat::kMeta       ? open_meta_checkpoint(model_dir, config)
      : format == CheckpointFormat::kTorchBin ? open_torch_bin_dir(model_dir)
                                              : safetensors_sources(model_dir);
  // torch.save formats hand out views on their memory-mapped files; the model must own its
  // weights, not keep the files mapped (and open to changes underneath).
  const bool must_copy = format != CheckpointFormat::kSafetensors;
  const std::string config_name = format == CheckpointFormat::kMeta ? "params.json" : "config.json";
  LlamaWeights weights;
  std::vector<WeightSlot> slots = weight_slots(config, weights);

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
  for (WeightSlot& slot : slots) {
    const torch::Tensor stored = checkpoint.at(slot.name).read();
    torch::Tensor converted = stored.to(device, dtype);
    if (must_copy && converted.is_alias_of(stored)) {
      converted = converted.clone(torch::MemoryFormat::Contiguous);
    }
    *slot.tensor = converted.contiguous();  // a .bin may store a view with any strides
  }
  if (config.tie_word_embeddings) weights.lm_head = weights.embed_tokens;
  return weights;
}

LlamaModel load_model(const std::filesystem::path& model_dir, const ModelLoadOptions& options) {
  LlamaConfig config = load_config(model_dir);
  LlamaWeights weights = load_weights(model_dir, config, options.dtype, options.device);
  RopeScaling runtime = options.rope_scaling.value_or(config.rope_scaling);
  log()->debug("loaded {} ({} parameters, {}), RoPE trained: {}, runtime: {}", model_dir.string(),
               config.num_parameters(), dtype_name(options.dtype), config.rope_scaling.describe(),
               runtime.describe());
  return LlamaModel(std::move(config), std::move(weights), std::move(runtime));
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "f32" || name == "float32" || name == "fp32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "f16" || name == "float16" || name == "fp16") return torch::kFloat16;
  throw Error("unknown dtype '{}' (use f32, bf16 or f16)", name);
}

std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32:
      return "float32";
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kFloat16:
      return "float16";
    default:
      return c10::toString(dtype);
  }
}

void write_model_files(const std::filesystem::path& model_dir, const LlamaConfig& config,
                       const LlamaWeights& weights, torch::ScalarType dtype,
                       uint64_t max_shard_bytes) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& [name, tensor] : named_weights(config, weights)) {
    tensors.emplace_back(name, tensor.to(torch::kCPU, dtype).contiguous());
  }
  write_sharded_safetensors(model_dir, tensors, max_shard_bytes);
  nlohmann::json json = config.to_json();
  json["torch_dtype"] = dtype_name(dtype);
  const auto path = model_dir / "config.json";
  std::ofstream stream(path);
  stream << json.dump(2) << "\n";
  LCTRAIN_CHECK(stream.good(), "failed to write {}", path.string());
}

void save_model(const std::filesystem::path& model_dir, const LlamaConfig& config,
                const LlamaWeights& weights, torch::ScalarType dtype, uint64_t max_shard_bytes) {
  LCTRAIN_CHECK(max_shard_bytes > 0, "the maximum shard size must be positive");
  // A fresh folder swapped in whole: weight files of an earlier save are never read instead of
  // (or mixed with) the new ones, and a failed save leaves the earlier folder as it was.
  write_model_folder(model_dir, [&](const std::filesystem::path& staging) {
    write_model_files(staging, config, weights, dtype, max_shard_bytes);
  });
}

}  // namespace lctrain::io
