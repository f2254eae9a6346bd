#include "distributed/launcher.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>

#include "util/error.h"
#include "util/file_descriptor.h"
#include "util/logging.h"

extern char** environ;

namespace lctrain::dist {
namespace {

using Clock = std::chrono::steady_clock;

struct Pipe {
  FileDescriptor read;
  FileDescriptor write;
};

// Close-on-exec, so that each worker keeps only the ends dup2()ed onto its 0/1/2 and no worker
// holds another's output pipe open (which would hide that worker's EOF).
Pipe make_pipe(int extra_flags = 0) {
  int fds[2];
  LCTRAIN_CHECK(::pipe2(fds, O_CLOEXEC | extra_flags) == 0, "pipe2 failed: {}", errno_text(errno));
  return {FileDescriptor(fds[0]), FileDescriptor(fds[1])};
}

void write_all(int fd, const std::string& text) {
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t count = ::write(fd, text.data() + written, text.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) return;  // e.g. EPIPE: our reader went away; the workers keep running
    written += static_cast<size_t>(count);
  }
}

// --- Signals ------------------------------------------------------------------------------------

// The write end of the self-pipe: handlers only write the signal number there, and the poll() loop
// does the actual work outside signal context.
int g_signal_pipe = -1;

void on_signal(int signal) {
  const int saved_errno = errno;
  const auto byte = static_cast<unsigned char>(signal);
  [[maybe_unused]] const ssize_t ignored = ::write(g_signal_pipe, &byte, 1);
  errno = saved_errno;
}

constexpr std::array<int, 4> kHandledSignals = {SIGINT, SIGTERM, SIGCHLD, SIGPIPE};

// Routes SIGINT, SIGTERM and SIGCHLD into the self-pipe for as long as it lives, and ignores
// SIGPIPE: a closed stdout must not kill the launcher (and through PDEATHSIG every worker).
class SignalPipe {
 public:
  SignalPipe() : pipe_(make_pipe(O_NONBLOCK)) {
    LCTRAIN_CHECK(g_signal_pipe < 0, "only one launch can run at a time in a process");
    g_signal_pipe = pipe_.write.get();
    for (size_t i = 0; i < kHandledSignals.size(); ++i) {
      struct sigaction action {};
      action.sa_handler = kHandledSignals[i] == SIGPIPE ? SIG_IGN : on_signal;
      sigemptyset(&action.sa_mask);
      action.sa_flags = SA_RESTART | (kHandledSignals[i] == SIGCHLD ? SA_NOCLDSTOP : 0);
      ::sigaction(kHandledSignals[i], &action, &previous_[i]);
    }
  }
  ~SignalPipe() {
    for (size_t i = 0; i < kHandledSignals.size(); ++i) {
      ::sigaction(kHandledSignals[i], &previous_[i], nullptr);
    }
    g_signal_pipe = -1;
  }
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;

  int read_fd() const { return pipe_.read.get(); }

  // The signals received since the last call, in arrival order.
  std::vector<int> take() {
    std::vector<int> signals;
    std::array<unsigned char, 64> bytes{};
    ssize_t count = 0;
    while ((count = ::read(pipe_.read.get(), bytes.data(), bytes.size())) > 0) {
      signals.insert(signals.end(), bytes.begin(), bytes.begin() + count);
    }
    return signals;
  }

 private:
  Pipe pipe_;
  std::array<struct sigaction, kHandledSignals.size()> previous_{};
};

// --- Output relay -------------------------------------------------------------------------------

// One output stream of a worker, re-emitted line by line behind "[rank R] ". Complete lines go out
// in one write() per read, so lines of different ranks never mix within a line.
class Stream {
 public:
  Stream(FileDescriptor fd, int rank, int target_fd)
      : fd_(std::move(fd)), prefix_(fmt::format("[rank {}] ", rank)), target_fd_(target_fd) {}

  bool open() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }

  // Reads what is available (the caller knows it is readable); closes the stream at EOF.
  void read_some() {
    std::array<char, 65536> buffer{};
    const ssize_t count = ::read(fd_.get(), buffer.data(), buffer.size());
    if (count < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (count <= 0) {
      close();
      return;
    }
    pending_.append(buffer.data(), static_cast<size_t>(count));
    std::string lines;
    size_t start = 0;
    for (size_t end = 0; (end = pending_.find('\n', start)) != std::string::npos; start = end + 1) {
      lines += prefix_;
      lines.append(pending_, start, end + 1 - start);
    }
    pending_.erase(0, start);
    // A worker writing an endless line must not grow our memory without bound.
    if (pending_.size() > kMaxLine) {
      lines += prefix_ + pending_ + '\n';
      pending_.clear();
    }
    write_all(target_fd_, lines);
  }

  // Flushes a last line that lacks its newline and stops reading.
  void close() {
    if (!pending_.empty()) write_all(target_fd_, prefix_ + pending_ + '\n');
    pending_.clear();
    fd_.reset();
  }

 private:
  static constexpr size_t kMaxLine = 1 << 20;
  FileDescriptor fd_;
  std::string prefix_;
  std::string pending_;
  int target_fd_;
};

// Reads whatever `streams` hold right now, without waiting for more. Data a worker wrote before it
// exited is in the pipe by the time it is reaped, so this gets all of it; the time bound only
// matters when a leftover grandchild keeps writing into an inherited pipe.
void drain(const std::vector<Stream*>& streams, std::chrono::milliseconds budget) {
  const auto deadline = Clock::now() + budget;
  while (Clock::now() < deadline) {
    std::vector<pollfd> fds;
    std::vector<Stream*> polled;
    for (Stream* stream : streams) {
      if (!stream->open()) continue;
      fds.push_back({stream->fd(), POLLIN, 0});
      polled.push_back(stream);
    }
    if (fds.empty() || ::poll(fds.data(), fds.size(), 0) <= 0) return;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents != 0) polled[i]->read_some();
    }
  }
}

// --- Workers ------------------------------------------------------------------------------------

struct Worker {
  int rank = 0;
  int local_rank = 0;
  pid_t pid = -1;
  bool running = false;         // started and not reaped yet
  std::vector<Stream> streams;  // stdout, stderr
};

// The workers of one launch. If the launch ends early (an exception), whatever still runs is
// killed and reaped here, so no worker outlives the launcher.
class WorkerSet {
 public:
  WorkerSet() = default;
  WorkerSet(const WorkerSet&) = delete;
  WorkerSet& operator=(const WorkerSet&) = delete;
  ~WorkerSet() {
    for (Worker& worker : workers) {
      if (!worker.running) continue;
      ::kill(-worker.pid, SIGKILL);
      ::waitpid(worker.pid, nullptr, 0);
    }
  }

  bool any_running() const {
    for (const Worker& worker : workers) {
      if (worker.running) return true;
    }
    return false;
  }

  // Each worker leads its own process group, so a signal also reaches what it started (a shell
  // script's `sleep`, a data loader's processes).
  void signal_running(int signal) {
    for (Worker& worker : workers) {
      if (worker.running) ::kill(-worker.pid, signal);
    }
  }

  std::vector<Worker> workers;
};

// Whether `pid` is stopped (SIGSTOP, SIGTSTP, a debugger): state T or t in /proc/PID/stat.
bool is_stopped(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  const std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');  // the command name may hold spaces and parentheses
  return paren != std::string::npos && paren + 2 < text.size() &&
         (text[paren + 2] == 'T' || text[paren + 2] == 't');
}

// The environment torchrun gives a worker, on top of the launcher's own (minus stale copies).
std::vector<std::string> worker_environment(const LaunchOptions& options, const Worker& worker) {
  const int world_size = options.nproc_per_node * options.nnodes;
  const std::vector<std::pair<std::string, std::string>> variables = {
      {"RANK", std::to_string(worker.rank)},
      {"LOCAL_RANK", std::to_string(worker.local_rank)},
      {"WORLD_SIZE", std::to_string(world_size)},
      {"LOCAL_WORLD_SIZE", std::to_string(options.nproc_per_node)},
      {"GROUP_RANK", std::to_string(options.node_rank)},
      {"MASTER_ADDR", options.master_addr},
      {"MASTER_PORT", std::to_string(options.master_port)},
  };
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    const std::string name = text.substr(0, text.find('='));
    // torchrun's own agent variables would be stale: this launcher's rank 0 hosts the store.
    bool overridden = name.rfind("TORCHELASTIC_", 0) == 0;
    for (const auto& variable : variables) overridden = overridden || variable.first == name;
    if (!overridden) environment.push_back(text);
  }
  for (const auto& [name, value] : variables) environment.push_back(name + "=" + value);
  return environment;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> result;
  for (std::string& text : strings) result.push_back(text.data());
  result.push_back(nullptr);
  return result;
}

// Starts `worker` and returns once it runs `options.program`, or throws if exec() failed.
// Everything the child needs is prepared before fork(): between fork() and exec() only
// async-signal-safe calls are allowed, since LibTorch may already have started threads.
void start_worker(const LaunchOptions& options, Worker& worker, int stdin_fd) {
  std::vector<std::string> argv_strings = options.argv;
  std::vector<std::string> env_strings = worker_environment(options, worker);
  const std::vector<char*> argv = pointers(argv_strings);
  const std::vector<char*> envp = pointers(env_strings);
  Pipe out = make_pipe();
  Pipe err = make_pipe();
  // Closed by a successful exec(); otherwise the child writes its errno into it.
  Pipe exec_status = make_pipe();

  // Signals stay blocked across fork() so the child never runs our handlers: it resets them to
  // the default before unblocking.
  sigset_t all_signals;
  sigset_t previous_mask;
  sigfillset(&all_signals);
  ::pthread_sigmask(SIG_SETMASK, &all_signals, &previous_mask);
  const pid_t launcher = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (const int signal : kHandledSignals) ::sigaction(signal, &default_action, nullptr);
    ::setpgid(0, 0);
    // Dies with the launcher even when the launcher is SIGKILLed; getppid() closes the race with a
    // launcher that died before prctl().
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != launcher) ::_exit(127);
    ::dup2(stdin_fd, STDIN_FILENO);
    ::dup2(out.write.get(), STDOUT_FILENO);
    ::dup2(err.write.get(), STDERR_FILENO);
    ::pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
    ::execve(options.program.c_str(), argv.data(), envp.data());
    const int error = errno;
    [[maybe_unused]] const ssize_t ignored = ::write(exec_status.write.get(), &error, sizeof error);
    ::_exit(127);
  }
  const int fork_error = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  LCTRAIN_CHECK(pid > 0, "fork failed for rank {}: {}", worker.rank, errno_text(fork_error));

  exec_status.write.reset();
  int exec_error = 0;
  ssize_t count = 0;
  do {
    count = ::read(exec_status.read.get(), &exec_error, sizeof exec_error);
  } while (count < 0 && errno == EINTR);
  if (count > 0) {
    ::waitpid(pid, nullptr, 0);
    throw Error("cannot execute '{}': {}", options.program, errno_text(exec_error));
  }
  worker.pid = pid;
  worker.running = true;
  worker.streams.emplace_back(std::move(out.read), worker.rank, STDOUT_FILENO);
  worker.streams.emplace_back(std::move(err.read), worker.rank, STDERR_FILENO);
}

struct Outcome {
  bool failed = false;
  int exit_code = 0;  // what the launcher returns for it
  std::string description;
};

Outcome describe(int status) {
  if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    return {code != 0, code, fmt::format("exited with code {}", code)};
  }
  const int signal = WTERMSIG(status);
  return {true, 1, fmt::format("was killed by signal {} ({})", signal, ::strsignal(signal))};
}

void validate(const LaunchOptions& options) {
  LCTRAIN_CHECK(!options.program.empty() && !options.argv.empty(), "no worker command given");
  LCTRAIN_CHECK(options.nproc_per_node >= 1, "--nproc-per-node must be at least 1, got {}",
                options.nproc_per_node);
  LCTRAIN_CHECK(options.nnodes >= 1, "--nnodes must be at least 1, got {}", options.nnodes);
  LCTRAIN_CHECK(options.node_rank >= 0 && options.node_rank < options.nnodes,
                "--node-rank must be in [0, {}), got {}", options.nnodes, options.node_rank);
  LCTRAIN_CHECK(options.master_port >= 0 && options.master_port <= 65535,
                "--master-port must be in [0, 65535], got {}", options.master_port);
  LCTRAIN_CHECK(options.master_port != 0 || options.nnodes == 1,
                "--master-port is required with --nnodes > 1: all nodes must agree on it");
  LCTRAIN_CHECK(!options.master_addr.empty(), "--master-addr must not be empty");
  LCTRAIN_CHECK(options.kill_timeout_s >= 0, "--kill-timeout must not be negative, got {}",
                options.kill_timeout_s);
}

// Relays output, forwards signals and reaps workers until none runs; returns the exit code.
int supervise(WorkerSet& set, SignalPipe& signals, double kill_timeout_s) {
  std::optional<Outcome> failure;
  // While set, the workers left after a failure got SIGTERM and get SIGKILL at kill_deadline.
  bool kill_pending = false;
  Clock::time_point kill_deadline{};
  while (set.any_running()) {
    std::vector<pollfd> fds = {{signals.read_fd(), POLLIN, 0}};
    std::vector<Stream*> polled;
    for (Worker& worker : set.workers) {
      for (Stream& stream : worker.streams) {
        if (!stream.open()) continue;
        fds.push_back({stream.fd(), POLLIN, 0});
        polled.push_back(&stream);
      }
    }
    int timeout_ms = -1;
    if (kill_pending) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(kill_deadline - Clock::now());
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1 << 30));
    }
    if (::poll(fds.data(), fds.size(), timeout_ms) < 0) {
      LCTRAIN_CHECK(errno == EINTR, "poll failed: {}", errno_text(errno));
      continue;
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents != 0) polled[i - 1]->read_some();
    }

    for (const int signal : signals.take()) {
      if (signal != SIGINT && signal != SIGTERM) continue;  // SIGCHLD only wakes us up
      log()->warn("received {}, forwarding it to the workers", ::strsignal(signal));
      set.signal_running(signal);
    }

    for (Worker& worker : set.workers) {
      int status = 0;
      if (!worker.running || ::waitpid(worker.pid, &status, WNOHANG) != worker.pid) continue;
      worker.running = false;
      // Its last words first, then our verdict on it.
      drain({&worker.streams[0], &worker.streams[1]}, std::chrono::milliseconds(100));
      const Outcome outcome = describe(status);
      if (!outcome.failed) {
        log()->debug("rank {} {}", worker.rank, outcome.description);
        continue;
      }
      // Only the first failure is the cause; later ones are usually our own SIGTERM at work.
      if (failure) {
        log()->warn("rank {} {}", worker.rank, outcome.description);
        continue;
      }
      // A stopped rank never fails by itself: its peers time out waiting for it and are the
      // first to exit. The stopped one is then the cause, not the rank that gave up on it.
      std::vector<int> stopped;
      for (const Worker& other : set.workers) {
        if (other.running && is_stopped(other.pid)) stopped.push_back(other.rank);
      }
      if (!stopped.empty()) {
        log()->error(
            "rank {} is stopped (SIGSTOP or a debugger) and stopped answering; rank {} {} "
            "waiting for it",
            fmt::join(stopped, ", rank "), worker.rank, outcome.description);
      } else {
        log()->error("rank {} {}", worker.rank, outcome.description);
      }
      failure = outcome;
      if (set.any_running()) {
        log()->error("stopping the other workers (SIGTERM, SIGKILL after {}s)", kill_timeout_s);
        set.signal_running(SIGTERM);
        const std::chrono::duration<double> grace(std::min(kill_timeout_s, 1e7));
        kill_deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(grace);
        kill_pending = true;
      }
    }

    if (kill_pending && Clock::now() >= kill_deadline) {
      for (const Worker& worker : set.workers) {
        if (worker.running) log()->warn("rank {} ignored SIGTERM, killing it", worker.rank);
      }
      set.signal_running(SIGKILL);
      kill_pending = false;
    }
  }

  std::vector<Stream*> open_streams;
  for (Worker& worker : set.workers) {
    // After a failure, leave nothing behind: a worker's own children may outlive it.
    if (failure && worker.pid > 0) ::kill(-worker.pid, SIGKILL);
    for (Stream& stream : worker.streams) open_streams.push_back(&stream);
  }
  // Whatever is still open is held by such leftovers; don't wait for their EOF.
  drain(open_streams, std::chrono::milliseconds(500));
  for (Stream* stream : open_streams) stream->close();
  return failure ? failure->exit_code : 0;
}

}  // namespace

int find_free_port(const std::string& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int lookup = ::getaddrinfo(address.c_str(), "0", &hints, &found);
  LCTRAIN_CHECK(lookup == 0, "cannot resolve master address '{}': {}", address,
                ::gai_strerror(lookup));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, ::freeaddrinfo);
  std::string last_error = "no address";
  for (const addrinfo* entry = found; entry != nullptr; entry = entry->ai_next) {
    FileDescriptor socket(
        ::socket(entry->ai_family, entry->ai_socktype | SOCK_CLOEXEC, entry->ai_protocol));
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    if (!socket.valid() || ::bind(socket.get(), entry->ai_addr, entry->ai_addrlen) != 0 ||
        ::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
      last_error = errno_text(errno);
      continue;
    }
    if (bound.ss_family == AF_INET) {
      return ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
    }
    if (bound.ss_family == AF_INET6) {
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port);
    }
  }
  throw Error("cannot find a free port on '{}': {}", address, last_error);
}

int launch_local_workers(const LaunchOptions& given) {
  validate(given);
  LaunchOptions options = given;
  if (options.master_port == 0) options.master_port = find_free_port(options.master_addr);

  const FileDescriptor dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  LCTRAIN_CHECK(dev_null.valid(), "cannot open /dev/null: {}", errno_text(errno));
  SignalPipe signals;
  WorkerSet set;
  log()->info("launching {} worker(s) of node {}/{} (world size {}), master {}:{}: {}",
              options.nproc_per_node, options.node_rank, options.nnodes,
              options.nproc_per_node * options.nnodes, options.master_addr, options.master_port,
              fmt::join(options.argv, " "));
  set.workers.resize(static_cast<size_t>(options.nproc_per_node));
  for (int local_rank = 0; local_rank < options.nproc_per_node; ++local_rank) {
    Worker& worker = set.workers[static_cast<size_t>(local_rank)];
    worker.local_rank = local_rank;
    worker.rank = options.node_rank * options.nproc_per_node + local_rank;
    start_worker(options, worker, dev_null.get());
  }
  const int exit_code = supervise(set, signals, options.kill_timeout_s);
  if (exit_code == 0) log()->info("all {} worker(s) exited with code 0", options.nproc_per_node);
  return exit_code;
}

}  // namespace lctrain::dist
