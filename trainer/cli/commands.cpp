#include "cli/commands.h"

#include <iostream>
#include <map>

#include "util/cpu_threads.h"
#include "util/error.h"
#include "util/heap_policy.h"
#include "util/logging.h"

namespace lctrain::cli {
namespace {

std::map<const CLI::App*, Action>& actions() {
  static std::map<const CLI::App*, Action> registered;
  return registered;
}

template <typename Adder>
void add(CLI::App& app, const std::string& name, Adder adder) {
  Action action = adder(app);
  actions()[app.get_subcommand(name)] = std::move(action);
}

}  // namespace

void register_commands(CLI::App& app) {
  add(app, "config-reference", add_config_reference_command);
  add(app, "convert", add_convert_command);
  add(app, "eval", add_eval_command);
  add(app, "export", add_export_command);
  add(app, "forward", add_forward_command);
  add(app, "generate", add_generate_command);
  add(app, "inspect", add_inspect_command);
  add(app, "launch", add_launch_command);
  add(app, "plan", add_plan_command);
  add(app, "prepare-data", add_prepare_data_command);
  add(app, "profile-summary", add_profile_summary_command);
  add(app, "train", add_train_command);
}

int run_selected(const CLI::App& app, const std::string& log_level) {
  try {
    set_log_level(log_level);
    keep_freed_memory_in_heap();
    use_available_cpu_threads();
    for (const CLI::App* subcommand : app.get_subcommands()) {
      actions().at(subcommand)();
    }
    return 0;
  } catch (const ExitCode& exit) {
    return exit.code;
  } catch (const Error& error) {
    std::cerr << "lctrain: error: " << error.what() << std::endl;
  } catch (const c10::Error& error) {
    // A tensor-level failure we did not anticipate: report it without LibTorch's backtrace.
    std::cerr << "lctrain: error: " << error.what_without_backtrace() << std::endl;
  } catch (const std::exception& error) {
    std::cerr << "lctrain: error: " << error.what() << std::endl;
  }
  return 1;
}

}  // namespace lctrain::cli
