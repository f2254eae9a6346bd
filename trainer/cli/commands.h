// The subcommands of the lctrain CLI. Each registers its options on the app and runs when selected.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace lctrain::cli {

void register_commands(CLI::App& app);

// Runs the selected subcommand, turning any error into one message on stderr and exit code 1.
int run_selected(const CLI::App& app, const std::string& log_level);

// Thrown by an action to end the process with `code` and no error message of its own (e.g.
// `launch` passing on a worker's exit code); run_selected() returns it.
struct ExitCode {
  int code = 1;
};

// Each subcommand file defines one of these: it adds the subcommand and returns its action.
using Action = std::function<void()>;
Action add_config_reference_command(CLI::App& app);
Action add_convert_command(CLI::App& app);
Action add_eval_command(CLI::App& app);
Action add_export_command(CLI::App& app);
Action add_forward_command(CLI::App& app);
Action add_generate_command(CLI::App& app);
Action add_inspect_command(CLI::App& app);
Action add_launch_command(CLI::App& app);
Action add_plan_command(CLI::App& app);
Action add_prepare_data_command(CLI::App& app);
Action add_profile_summary_command(CLI::App& app);
Action add_train_command(CLI::App& app);

}  // namespace lctrain::cli
