// `lctrain inspect DIR`: what a model folder holds (config, parameters, dtypes, RoPE settings),
// or what a training checkpoint holds (step, tokens, world size, config, health).
#include <iostream>
#include <map>
#include <set>

#include "checkpoint/checkpoint_store.h"
#include "cli/commands.h"
#include "io/hf_model_dir.h"
#include "io/sharded_safetensors.h"
#include "model/rope_windows.h"
#include "util/error.h"

namespace lctrain::cli {
namespace {

bool is_checkpoint_path(const std::filesystem::path& path) {
  return std::filesystem::exists(path / "manifest.json") || !checkpoint::list(path).empty() ||
         !checkpoint::list(path / "checkpoints").empty();
}

// "trained window 96 tokens, original window 48 (RoPE yarn, factor 2)": what each scaling's keys
// mean, so a dynamic-NTK config (max_position_embeddings = L) does not read as a short model.
std::string describe_windows(const LlamaConfig& config) {
  const RopeWindows windows = rope_windows(config);
  return fmt::format("trained window {} tokens, original window {} (RoPE {})", windows.extended,
                     windows.original, config.rope_scaling.describe());
}

void describe_checkpoints(const std::filesystem::path& path) {
  std::vector<std::filesystem::path> folders;
  if (std::filesystem::exists(path / "manifest.json")) {
    folders.push_back(path);
  } else {
    folders = checkpoint::list(path);
    if (folders.empty()) folders = checkpoint::list(path / "checkpoints");
  }
  for (const auto& folder : folders) {
    const auto problem = checkpoint::problem_with(folder);
    std::cout << "checkpoint:          " << folder.string() << "\n"
              << "health:              "
              << (problem ? "DAMAGED: " + *problem
                          : "ok (sizes and "
                            "checksums verified)")
              << "\n";
    if (problem && problem->find("manifest.json") != std::string::npos) continue;
    const checkpoint::Manifest manifest = checkpoint::Manifest::read(folder);
    const LlamaConfig config =
        LlamaConfig::from_json(manifest.model_config, (folder / "manifest.json").string());
    int64_t bytes = 0;
    for (const auto& file : manifest.files) bytes += static_cast<int64_t>(file.bytes);
    std::cout << "step:                " << manifest.step << " (loss " << manifest.loss << ", lr "
              << manifest.lr << ")\n"
              << "tokens seen:         " << manifest.tokens_seen << " (" << manifest.sequences_seen
              << " sequences of " << manifest.data_path << ", seed " << manifest.data_seed << ")\n"
              << "world size:          " << manifest.world_size << " rank files, "
              << bytes / 1048576.0 << " MiB\n"
              << "model:               " << config.num_parameters() << " parameters, "
              << config.num_hidden_layers << " layers, " << describe_windows(config) << "\n"
              << "base model:          "
              << (manifest.base_model.empty() ? std::string("(random init)") : manifest.base_model)
              << "\n\n";
  }
}

}  // namespace

Action add_inspect_command(CLI::App& app) {
  auto model_dir = std::make_shared<std::string>();
  CLI::App* command = app.add_subcommand(
      "inspect", "Describe a Hugging Face model folder or a training checkpoint");
  command->add_option("model_dir", *model_dir, "model folder, checkpoint or run folder")
      ->required();

  return [model_dir] {
    const std::filesystem::path path = *model_dir;
    LCTRAIN_CHECK(std::filesystem::exists(path), "{} does not exist", path.string());
    LCTRAIN_CHECK(std::filesystem::is_directory(path),
                  "{} is a file; inspect takes a folder: a Hugging Face model folder "
                  "(config.json + weights), a checkpoint folder (manifest.json) or a run folder",
                  path.string());
    if (is_checkpoint_path(*model_dir)) return describe_checkpoints(*model_dir);
    const LlamaConfig config = io::load_config(*model_dir);
    const io::ShardedSafetensors checkpoint = io::ShardedSafetensors::open_dir(*model_dir);
    std::map<std::string, int64_t> elements_per_dtype;
    std::set<std::string> files;
    int64_t stored_elements = 0;
    for (const std::string& name : checkpoint.names()) {
      const io::TensorInfo& info = checkpoint.info(name);
      int64_t elements = 1;
      for (const int64_t size : info.shape) elements *= size;
      elements_per_dtype[c10::toString(info.dtype)] += elements;
      stored_elements += elements;
      files.insert(checkpoint.file_of(name).filename().string());
    }
    std::cout << "model folder:        " << *model_dir << "\n"
              << "architecture:        LLaMA, " << config.num_hidden_layers << " layers, hidden "
              << config.hidden_size << ", MLP " << config.intermediate_size << "\n"
              << "attention heads:     " << config.num_attention_heads << " query, "
              << config.num_key_value_heads << " key/value (head_dim " << config.head_dim << ")\n"
              << "vocabulary:          " << config.vocab_size
              << (config.tie_word_embeddings ? " (tied embeddings)" : " (separate lm_head)") << "\n"
              << "parameters:          " << config.num_parameters() << " (config), "
              << stored_elements << " stored in " << checkpoint.names().size() << " tensors, "
              << files.size() << " file(s)\n";
    std::cout << "stored dtypes:       ";
    for (const auto& [dtype, elements] : elements_per_dtype)
      std::cout << dtype << " " << elements << "  ";
    std::cout << "\n"
              << "window:              " << describe_windows(config) << "\n"
              << "max_position_emb.:   " << config.max_position_embeddings << "\n"
              << "rope_theta:          " << config.rope_theta << "\n"
              << "rms_norm_eps:        " << config.rms_norm_eps << "\n";
  };
}

}  // namespace lctrain::cli
