#include "util/cpu_threads.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

#include "util/logging.h"

namespace lctrain {
namespace {

int positive_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return 0;
  try {
    return std::max(0, std::stoi(value));
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

int available_cpus() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0) return std::max(1, CPU_COUNT(&mask));
  return std::max(1u, std::thread::hardware_concurrency());
}

int use_available_cpu_threads() {
  // LibTorch reads OMP_NUM_THREADS itself; an explicit choice (torchrun sets 1 for several
  // processes per node) is the user's.
  if (positive_env("OMP_NUM_THREADS") > 0) return at::get_num_threads();
  const int ranks_here = std::max(1, positive_env("LOCAL_WORLD_SIZE"));
  const int threads = std::max(1, available_cpus() / ranks_here);
  if (threads != at::get_num_threads()) {
    log()->debug("CPU threads: {} (LibTorch's default {}; {} CPUs over {} local rank(s))", threads,
                 at::get_num_threads(), available_cpus(), ranks_here);
    at::set_num_threads(threads);
  }
  return threads;
}

}  // namespace lctrain
