// `lctrain launch` run as a user runs it, with /bin/sh scripts as workers: the torchrun
// environment, prefixed output, failure propagation (exit code, SIGTERM then SIGKILL, nothing
// left running), signal forwarding, PDEATHSIG, and one-line errors for bad usage.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.h"

namespace lctrain {
namespace {

using Clock = std::chrono::steady_clock;
using testing::fixture_dir;
using testing::read_text;
using testing::run_command;
using testing::ScratchDir;
using testing::write_text;

using testing::quoted;

using testing::contains;

const auto lctrain = testing::run_lctrain;

// Writes a worker script into `scratch`; it sees its folder as $DIR.
std::string worker(const ScratchDir& scratch, const std::string& name, const std::string& body) {
  write_text(scratch / name, "DIR=" + quoted(scratch.path()) + "\n" + body);
  return "/bin/sh " + quoted(scratch / name);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Gone, or a zombie left to an init that may not reap it (ours are reaped by the launcher).
bool process_gone(int pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  return paren == std::string::npos || text.substr(paren + 2, 1) == "Z";
}

// Waits up to two seconds for every pid listed in the files `scratch/<prefix>*` to be gone.
void expect_all_gone(const ScratchDir& scratch, const std::string& prefix, size_t expected) {
  std::vector<int> pids;
  for (const auto& entry : std::filesystem::directory_iterator(scratch.path())) {
    if (entry.path().filename().string().rfind(prefix, 0) == 0) {
      pids.push_back(std::stoi(read_text(entry.path())));
    }
  }
  ASSERT_EQ(pids.size(), expected) << "pid files " << prefix << "*";
  const auto start = Clock::now();
  for (const int pid : pids) {
    while (!process_gone(pid) && seconds_since(start) < 2.0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(process_gone(pid)) << "process " << pid << " (" << prefix << ") still runs";
  }
}

// Every rank but `failing` records its shell's and its sleep's pids and sleeps; rank `failing`
// waits for those records, then runs `failure`. A record appears whole (written, then renamed):
// a rank stopped between creating the file and writing the pid would leave it empty.
std::string failing_worker(const ScratchDir& scratch, int ranks, int failing,
                           const std::string& failure, const std::string& prologue = "") {
  const std::string script = fmt::format(R"(
if [ "$RANK" = {} ]; then
  while [ $(ls "$DIR" | grep -c '^sleep') -lt {} ]; do sleep 0.02; done
  {}
fi
echo $$ > "$DIR/.shell.$RANK" && mv "$DIR/.shell.$RANK" "$DIR/shell.$RANK"
sleep 30 &
echo $! > "$DIR/.sleep.$RANK" && mv "$DIR/.sleep.$RANK" "$DIR/sleep.$RANK"
wait
)",
                                         failing, ranks - 1, failure);
  return worker(scratch, "worker.sh", prologue + script);
}

// Starts `lctrain launch --nproc-per-node 2 -- <command>` in the background, sends it `signal`
// once both workers wrote their shell.RANK file, and prints "launcher exit=<its status>".
testing::CommandResult signal_launcher(const ScratchDir& scratch, const std::string& command,
                                       const std::string& signal) {
  write_text(scratch / "driver.sh", fmt::format(R"(
{} launch --nproc-per-node 2 -- {} &
launcher=$!
while [ $(ls {} | grep -c '^shell') -lt 2 ]; do sleep 0.02; done
kill -{} $launcher
wait $launcher
echo "launcher exit=$?"
)",
                                                quoted(testing::lctrain_binary()), command,
                                                quoted(scratch.path()), signal));
  return run_command("/bin/sh " + quoted(scratch / "driver.sh"));
}

// ---------------------------------------------------------------------------------------------
// Environment and output.

TEST(Launch, GivesEachRankTorchrunsEnvironmentAndPrefixesItsOutput) {
  ScratchDir scratch;
  const std::string command = worker(scratch, "env.sh", R"(
echo "rank=$RANK local=$LOCAL_RANK world=$WORLD_SIZE lws=$LOCAL_WORLD_SIZE group=$GROUP_RANK \
addr=$MASTER_ADDR port=$MASTER_PORT agent=${TORCHELASTIC_USE_AGENT_STORE:-unset}"
echo "to stderr $RANK" >&2
printf 'no newline %s' "$RANK"
)");
  // A stale RANK, or torchrun's agent variables (lctrain launch inside a torchrun job), in the
  // launcher's environment must not leak through.
  const auto result = run_command(
      "{ RANK=99 TORCHELASTIC_USE_AGENT_STORE=True " + quoted(testing::lctrain_binary()) +
      " launch --nproc-per-node 3 -- " + command + " 2>" + quoted(scratch / "err.txt") + "; }");
  const std::string err = read_text(scratch / "err.txt");
  ASSERT_EQ(result.exit_code, 0) << result.output << err;

  const std::regex line_pattern(
      R"(\[rank (\d)\] rank=(\d) local=(\d) world=3 lws=3 group=0 addr=127\.0\.0\.1 port=(\d+) agent=unset)");
  std::set<std::string> ranks;
  std::set<std::string> ports;
  std::istringstream lines(result.output);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch match;
    if (!std::regex_match(line, match, line_pattern)) continue;
    EXPECT_EQ(match[1], match[2]) << line;
    EXPECT_EQ(match[1], match[3]) << line;
    ranks.insert(match[1]);
    ports.insert(match[4]);
  }
  EXPECT_EQ(ranks, (std::set<std::string>{"0", "1", "2"})) << result.output;
  ASSERT_EQ(ports.size(), 1u) << result.output;
  EXPECT_GT(std::stoi(*ports.begin()), 0);
  for (const std::string rank : {"0", "1", "2"}) {
    EXPECT_TRUE(contains(result.output, "[rank " + rank + "] no newline " + rank + "\n"))
        << result.output;
    EXPECT_TRUE(contains(err, "[rank " + rank + "] to stderr " + rank + "\n")) << err;
    EXPECT_FALSE(contains(result.output, "to stderr")) << result.output;
  }
}

// Also: everything after `--`, option-like words and a second `--` included, goes to the worker.
TEST(Launch, NumbersRanksByNodeAndPassesTheWorkerItsArguments) {
  ScratchDir scratch;
  const std::string command = worker(scratch, "env.sh", R"(
echo "rank=$RANK local=$LOCAL_RANK world=$WORLD_SIZE group=$GROUP_RANK $MASTER_ADDR:$MASTER_PORT"
echo "args: $*"
)");
  const std::string options = "--nnodes 3 --node-rank 1 --master-addr 10.1.2.3 --master-port 29555";
  const auto result = lctrain("launch --nproc-per-node 2 " + options + " -- " + command +
                              " --config x.yaml -n 2 -- tail");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* line : {"[rank 2] rank=2 local=0 world=6 group=1 10.1.2.3:29555\n",
                           "[rank 3] rank=3 local=1 world=6 group=1 10.1.2.3:29555\n",
                           "[rank 3] args: --config x.yaml -n 2 -- tail\n"}) {
    EXPECT_TRUE(contains(result.output, line)) << result.output;
  }
}

TEST(Launch, RelaysLongOutputLineByLine) {
  ScratchDir scratch;
  const std::string command = worker(scratch, "seq.sh", "seq 1 3000\n");
  const auto result = lctrain("--log-level warn launch --nproc-per-node 2 -- " + command);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::istringstream lines(result.output);
  std::string line;
  int count = 0;
  const std::regex pattern(R"(\[rank [01]\] \d+)");
  while (std::getline(lines, line)) {
    EXPECT_TRUE(std::regex_match(line, pattern)) << "mangled line: " << line;
    ++count;
  }
  EXPECT_EQ(count, 6000);
}

TEST(Launch, RunsAnLctrainSubcommandWithItsOwnBinary) {
  const auto result =
      lctrain("launch --nproc-per-node 2 -- inspect " + quoted(fixture_dir("tiny-llama-parity")));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "[rank 0] model folder:")) << result.output;
  EXPECT_TRUE(contains(result.output, "[rank 1] model folder:")) << result.output;
  EXPECT_TRUE(contains(result.output, "[rank 1] architecture:        LLaMA, 2 layers"))
      << result.output;
}

// ---------------------------------------------------------------------------------------------
// Failures.

TEST(Launch, AFailingRankStopsTheOthersAndPassesOnItsExitCode) {
  ScratchDir scratch;
  const auto start = Clock::now();
  const auto result =
      lctrain("launch --nproc-per-node 3 -- " + failing_worker(scratch, 3, 1, "exit 3"));
  // The others were stopped, not waited for: their sleep is 30 s. (A loose bound: a loaded CI
  // machine takes seconds to start and stop processes.)
  EXPECT_LT(seconds_since(start), 15.0);
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_TRUE(contains(result.output, "rank 1 exited with code 3")) << result.output;
  expect_all_gone(scratch, "shell.", 2);
  expect_all_gone(scratch, "sleep.", 2);  // a worker's own children go too
}

TEST(Launch, NamesTheSignalThatKilledARank) {
  ScratchDir scratch;
  const auto result =
      lctrain("launch --nproc-per-node 2 -- " + failing_worker(scratch, 2, 0, "kill -9 $$"));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_TRUE(contains(result.output, "rank 0 was killed by signal 9 (Killed)")) << result.output;
  expect_all_gone(scratch, "shell.", 1);
  expect_all_gone(scratch, "sleep.", 1);
}

TEST(Launch, KillsARankThatIgnoresSigtermAfterTheKillTimeout) {
  ScratchDir scratch;
  const auto start = Clock::now();
  const auto result = lctrain("launch --nproc-per-node 2 --kill-timeout 1 -- " +
                              failing_worker(scratch, 2, 1, "exit 2", "trap '' TERM\n"));
  const double elapsed = seconds_since(start);
  EXPECT_GE(elapsed, 1.0);   // the kill timeout was given to the rank that ignores SIGTERM
  EXPECT_LT(elapsed, 15.0);  // then it was killed, well before its 30 s sleep ends
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_TRUE(contains(result.output, "rank 1 exited with code 2")) << result.output;
  EXPECT_TRUE(contains(result.output, "rank 0 ignored SIGTERM")) << result.output;
  expect_all_gone(scratch, "shell.", 1);
  expect_all_gone(scratch, "sleep.", 1);
}

TEST(Launch, NamesAStoppedRankRatherThanThePeerThatGaveUpOnIt) {
  // Rank 1 stops itself (as SIGSTOP or a debugger would); rank 0 then fails as a timed-out
  // collective does. The stopped rank is the cause.
  ScratchDir scratch;
  const std::string script = R"(
if [ "$RANK" = 1 ]; then echo $$ > "$DIR/shell.1"; kill -STOP $$; fi
while [ ! -f "$DIR/shell.1" ]; do sleep 0.02; done
sleep 0.5
echo "rank 0: collective timed out" >&2
exit 1
)";
  const auto result = lctrain("launch --nproc-per-node 2 --kill-timeout 1 -- " +
                              worker(scratch, "worker.sh", script));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_TRUE(contains(result.output, "rank 1 is stopped")) << result.output;
  EXPECT_TRUE(contains(result.output, "rank 0 exited with code 1 waiting for it")) << result.output;
  expect_all_gone(scratch, "shell.", 1);
}

// ---------------------------------------------------------------------------------------------
// Signals sent to the launcher.

// Workers that finish cleanly on `signal`.
std::string graceful_worker(const ScratchDir& scratch, const std::string& signal) {
  const std::string script = fmt::format(R"(
trap 'echo got {0}; exit 0' {0}
echo $$ > "$DIR/shell.$RANK"
while :; do sleep 0.1; done
)",
                                         signal);
  return worker(scratch, "worker.sh", script);
}

TEST(Launch, ForwardsSigtermAndExitsZeroWhenTheWorkersDo) {
  ScratchDir scratch;
  const auto result = signal_launcher(scratch, graceful_worker(scratch, "TERM"), "TERM");
  EXPECT_TRUE(contains(result.output, "launcher exit=0")) << result.output;
  EXPECT_TRUE(contains(result.output, "[rank 0] got TERM")) << result.output;
  EXPECT_TRUE(contains(result.output, "[rank 1] got TERM")) << result.output;
  EXPECT_TRUE(contains(result.output, "forwarding")) << result.output;
  expect_all_gone(scratch, "shell.", 2);
}

TEST(Launch, ForwardsSigint) {
  ScratchDir scratch;
  const auto result = signal_launcher(scratch, graceful_worker(scratch, "INT"), "INT");
  EXPECT_TRUE(contains(result.output, "launcher exit=0")) << result.output;
  EXPECT_TRUE(contains(result.output, "[rank 0] got INT")) << result.output;
  EXPECT_TRUE(contains(result.output, "[rank 1] got INT")) << result.output;
  expect_all_gone(scratch, "shell.", 2);
}

TEST(Launch, WorkersDieWithAKilledLauncher) {
  ScratchDir scratch;
  const std::string command = worker(scratch, "worker.sh", R"(
echo $$ > "$DIR/shell.$RANK"
while :; do sleep 0.1; done
)");
  const auto result = signal_launcher(scratch, command, "KILL");
  EXPECT_TRUE(contains(result.output, "launcher exit=137")) << result.output;
  expect_all_gone(scratch, "shell.", 2);  // PR_SET_PDEATHSIG
}

// ---------------------------------------------------------------------------------------------
// Bad usage: one clear message, non-zero exit, no worker started.

TEST(Launch, RejectsBadUsage) {
  struct Case {
    std::string args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"launch --nproc-per-node 0 -- /bin/true", "--nproc-per-node must be at least 1, got 0"},
      {"launch --nproc-per-node 2", "no worker command"},
      {"launch --nproc-per-node 2 --", "no worker command"},
      {"launch --nproc-per-node 2 --nnodes 2 --node-rank 1 -- /bin/true",
       "--master-port is required with --nnodes > 1"},
      {"launch --nproc-per-node 2 -- /nonexistent/worker --flag",
       "cannot execute '/nonexistent/worker': No such file or directory"},
  };
  for (const Case& c : cases) {
    const auto result = lctrain(c.args);
    EXPECT_NE(result.exit_code, 0) << c.args << "\n" << result.output;
    EXPECT_LT(result.exit_code, 128) << c.args << "\n" << result.output;
    EXPECT_TRUE(contains(result.output, c.message)) << c.args << "\n" << result.output;
    EXPECT_FALSE(contains(result.output, "[rank")) << c.args << "\n" << result.output;
  }
}

TEST(Launch, HelpDocumentsTheExitStatus) {
  const auto result = lctrain("launch --help");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "Exit status")) << result.output;
  EXPECT_TRUE(contains(result.output, "--nproc-per-node")) << result.output;
}

}  // namespace
}  // namespace lctrain
