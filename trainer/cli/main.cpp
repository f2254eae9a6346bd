// lctrain command line: one subcommand per file under cli/, dispatched here.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "cli/commands.h"
#include "util/error.h"
#include "util/logging.h"

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) must fail the write with EFBIG, which ends in a clear error,
  // rather than kill the process in the middle of a checkpoint.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"lctrain: extend the context window of LLaMA models by Position Interpolation"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off");
  lctrain::cli::register_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  return lctrain::cli::run_selected(app, log_level);
}
