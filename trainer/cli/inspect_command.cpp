// `lctrain inspect DIR`: what a model folder holds: config, parameters, dtypes, RoPE settings.
#include <iostream>
#include <map>
#include <set>

#include "cli/commands.h"
#include "io/hf_model_dir.h"
#include "io/sharded_safetensors.h"

namespace lctrain::cli {

Action add_inspect_command(CLI::App& app) {
  auto model_dir = std::make_shared<std::string>();
  CLI::App* command = app.add_subcommand("inspect", "Describe a Hugging Face model folder");
  command->add_option("model_dir", *model_dir, "model folder")->required();

  return [model_dir] {
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
              << "trained window:      " << config.max_position_embeddings << " tokens\n"
              << "rope_theta:          " << config.rope_theta << "\n"
              << "rope_scaling:        " << config.rope_scaling.describe() << "\n"
              << "rms_norm_eps:        " << config.rms_norm_eps << "\n";
  };
}

}  // namespace lctrain::cli
