// Options shared by the subcommands that run a model (forward, generate, eval): where it comes
// from (a Hugging Face folder, or a training checkpoint), --dtype, --device, --rope-scaling, and
// which tokenizer goes with it.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "io/hf_model_dir.h"
#include "io/tokenizer.h"

namespace lctrain::cli {

struct ModelOptions {
  std::string model_dir;
  std::string checkpoint_dir;  // a training checkpoint (or its run folder) instead of --model
  std::string tokenizer_file;  // overrides the tokenizer.model found with the model
  std::string dtype = "f32";
  std::string device = "cpu";
  std::string rope_scaling_json;  // empty: use config.json's rope_scaling

  void add_to(CLI::App& command);
  io::ModelLoadOptions to_load_options() const;
  // The model, from --model or --checkpoint (one of them is required).
  LlamaModel load() const;
  // The model's config alone (cheap: no weights), and the file it was read from.
  struct ConfigSource {
    LlamaConfig config;
    std::string file;
  };
  ConfigSource load_config() const;
  // --tokenizer, else the model folder's tokenizer.model, else (for a checkpoint) its base
  // model's.
  std::filesystem::path tokenizer_path() const;
  // That tokenizer, refused (naming both files and sizes) when it has more pieces than the
  // model's vocab_size.
  io::Tokenizer load_tokenizer() const;
  // The folder the model comes from, for messages and reports.
  std::string source() const;
};

}  // namespace lctrain::cli
