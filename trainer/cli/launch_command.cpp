// `lctrain launch`: the workers of one node with torchrun's environment (see dist/launcher.h).
#include <filesystem>
#include <system_error>

#include "cli/commands.h"
#include "distributed/launcher.h"
#include "util/error.h"
#include "util/logging.h"

namespace lctrain::cli {
namespace {

constexpr const char* kFooter = R"(
Everything after `--` is the worker command. If its first word contains a '/', it is a program run
as-is (like torchrun --no-python); otherwise it is an lctrain command line, run by this same binary
(which then also passes on --log-level), e.g.:
  lctrain launch --nproc-per-node 2 -- train --config run.yaml
  lctrain launch --nproc-per-node 4 -- ./my_worker.sh --flag

Each worker gets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR and
MASTER_PORT, runs in its own process group with stdin from /dev/null, and has its output lines
prefixed with "[rank R] ". SIGINT/SIGTERM sent to the launcher go to every worker.
If a worker fails, the others get SIGTERM, then SIGKILL after --kill-timeout seconds.

Exit status: 0 if every worker exits 0 (also after a forwarded SIGINT/SIGTERM); otherwise the exit
code of the first worker that failed, or 1 if it was killed by a signal (or the launch failed).
)";

}  // namespace

Action add_launch_command(CLI::App& app) {
  struct Options {
    dist::LaunchOptions launch;
    std::vector<std::string> command;
  };
  auto options = std::make_shared<Options>();
  dist::LaunchOptions& launch = options->launch;
  CLI::App* command = app.add_subcommand(
      "launch", "Run the workers of one node, like torchrun: lctrain launch [options] -- command");
  command->footer(kFooter);
  command
      ->add_option("--nproc-per-node,--nproc_per_node", launch.nproc_per_node,
                   "number of workers on this node")
      ->required();
  command->add_option("--nnodes", launch.nnodes, "number of nodes")->capture_default_str();
  command->add_option("--node-rank,--node_rank", launch.node_rank, "rank of this node")
      ->capture_default_str();
  command->add_option("--master-addr,--master_addr", launch.master_addr, "address of rank 0")
      ->capture_default_str();
  command->add_option("--master-port,--master_port", launch.master_port,
                      "port of rank 0; 0 picks a free one (single node only)");
  command
      ->add_option("--kill-timeout", launch.kill_timeout_s,
                   "seconds between SIGTERM and SIGKILL for the workers left after one fails")
      ->capture_default_str();
  command->add_option("command", options->command, "worker command (after --)");

  return [options] {
    const std::vector<std::string>& words = options->command;
    LCTRAIN_CHECK(!words.empty(),
                  "launch: no worker command; usage: lctrain launch --nproc-per-node N -- "
                  "<lctrain subcommand or /path/to/program> [args...]");
    dist::LaunchOptions launch = options->launch;
    if (words.front().find('/') != std::string::npos) {
      launch.program = words.front();
      launch.argv = words;
    } else {
      // Our own binary, through /proc/self/exe so that a rebuilt or moved lctrain can't swap in.
      launch.program = "/proc/self/exe";
      std::error_code error;
      const std::filesystem::path self = std::filesystem::read_symlink(launch.program, error);
      launch.argv = {error ? std::string("lctrain") : self.string()};
      if (words.front().rfind('-', 0) != 0) {
        const auto level = spdlog::level::to_string_view(log()->level());
        launch.argv.insert(launch.argv.end(),
                           {"--log-level", std::string(level.data(), level.size())});
      }
      launch.argv.insert(launch.argv.end(), words.begin(), words.end());
    }
    const int exit_code = dist::launch_local_workers(launch);
    if (exit_code != 0) throw ExitCode{exit_code};
  };
}

}  // namespace lctrain::cli
