// `lctrain config-reference`: prints the configuration reference (every training key, its default
// and meaning) as Markdown; docs/configuration.md is its output.
#include <iostream>

#include "cli/commands.h"
#include "train/config_reference.h"

namespace lctrain::cli {

Action add_config_reference_command(CLI::App& app) {
  app.add_subcommand("config-reference",
                     "Print every training config key with its default and meaning (Markdown)");
  return [] { std::cout << configuration_reference_markdown(); };
}

}  // namespace lctrain::cli
