// Options shared by the subcommands that load a model (--model, --dtype, --rope-scaling).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "io/hf_model_dir.h"

namespace lctrain::cli {

struct ModelOptions {
  std::string model_dir;
  std::string dtype = "f32";
  std::string device = "cpu";
  std::string rope_scaling_json;  // empty: use config.json's rope_scaling

  void add_to(CLI::App& command);
  io::ModelLoadOptions to_load_options() const;
};

}  // namespace lctrain::cli
