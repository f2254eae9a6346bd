#include "checkpoint/checkpoint_export.h"

#include <fstream>
#include <map>

#include "checkpoint/checkpoint_store.h"
#include "checkpoint/streamed_export.h"
#include "io/hf_model_dir.h"
#include "io/model_folder_swap.h"
#include "util/error.h"
#include "util/json_fields.h"
#include "util/logging.h"

namespace lctrain::checkpoint {
namespace fs = std::filesystem;
namespace {

// Files a tokenizer is made of in a Hugging Face folder (SentencePiece and fast tokenizers).
constexpr const char* kTokenizerFiles[] = {"tokenizer.model", "tokenizer.json",
                                           "tokenizer_config.json", "special_tokens_map.json",
                                           "added_tokens.json"};

nlohmann::json generation_config_for(const LlamaConfig& config, const fs::path& base_model) {
  // The base model's own generation settings win; we only state the defaults it lacks.
  nlohmann::json generation = nlohmann::json::object();
  const bool from_base = !base_model.empty() && fs::exists(base_model / "generation_config.json");
  if (from_base) {
    generation = read_json_file(base_model / "generation_config.json");
  }
  const nlohmann::json& source = config.original_json;
  for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"}) {
    if (!generation.contains(key) && source.contains(key) && !source.at(key).is_null()) {
      generation[key] = source.at(key);
    }
  }
  generation["_from_model_config"] = !from_base;
  return generation;
}

void write_json(const fs::path& path, const nlohmann::json& json) {
  std::ofstream stream(path);
  stream << json.dump(2) << "\n";
  LCTRAIN_CHECK(stream.good(), "failed to write {}", path.string());
}

}  // namespace

std::pair<LlamaConfig, LlamaWeights> read_model(const fs::path& checkpoint_dir,
                                                const Manifest& manifest) {
  LlamaConfig config = LlamaConfig::from_json(
      manifest.model_config, (checkpoint_dir / "manifest.json").string() + " model.config");
  LlamaWeights weights;
  std::map<std::string, WeightSlot> slots;
  for (WeightSlot& slot : weight_slots(config, weights)) slots.emplace(slot.name, slot);
  for (size_t index = 0; index < manifest.units.size(); ++index) {
    const UnitLayout& unit = manifest.units[index];
    const torch::Tensor flat = read_full_unit(checkpoint_dir, manifest, index);
    for (const ParameterLayout& parameter : unit.parameters) {
      const auto found = slots.find(parameter.name);
      LCTRAIN_CHECK(found != slots.end(), "{}: tensor {} is not part of a {}-layer LLaMA",
                    checkpoint_dir.string(), parameter.name, config.num_hidden_layers);
      LCTRAIN_CHECK(found->second.shape == parameter.shape,
                    "{}: tensor {} has a shape other than its config's", checkpoint_dir.string(),
                    parameter.name);
      int64_t count = 1;
      for (const int64_t size : parameter.shape) count *= size;
      *found->second.tensor = flat.narrow(0, parameter.offset, count).view(parameter.shape).clone();
      slots.erase(found);
    }
  }
  LCTRAIN_CHECK(slots.empty(), "{}: the checkpoint lacks {}", checkpoint_dir.string(),
                slots.begin()->first);
  if (config.tie_word_embeddings) weights.lm_head = weights.embed_tokens;
  return {std::move(config), std::move(weights)};
}

void write_companion_files(const fs::path& out, const LlamaConfig& config,
                           const fs::path& base_model) {
  write_json(out / "generation_config.json", generation_config_for(config, base_model));
  std::vector<std::string> copied;
  for (const char* name : kTokenizerFiles) {
    if (!base_model.empty() && fs::exists(base_model / name)) {
      fs::copy_file(base_model / name, out / name, fs::copy_options::overwrite_existing);
      copied.push_back(name);
    }
  }
  // A run from random weights has no tokenizer to pass on; one from a folder should.
  if (copied.empty() && !base_model.empty()) {
    log()->warn("no tokenizer files copied: the run's base model ({}) has none",
                base_model.string());
  }
}

std::vector<std::string> export_hugging_face(const fs::path& checkpoint_dir, const fs::path& out,
                                             const ExportOptions& options) {
  // Arguments are checked before anything is written; the new folder is written beside `out` and
  // swapped in whole, so a refused or failed export leaves `out` as it was.
  LCTRAIN_CHECK(options.max_shard_bytes > 0, "--max-shard-size must be positive");
  const Manifest manifest = Manifest::read(checkpoint_dir);
  // Streamed: one unit in memory at a time, never the whole model.
  io::write_model_folder(out, [&](const fs::path& staging) {
    const LlamaConfig config = write_model_streamed(checkpoint_dir, manifest, staging,
                                                    options.dtype, options.max_shard_bytes);
    write_companion_files(staging, config, manifest.base_model);
  });
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(out)) files.push_back(entry.path().filename());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace lctrain::checkpoint
