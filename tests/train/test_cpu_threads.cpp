// util/cpu_threads: lctrain takes every CPU it may run on, shared among the node's ranks, unless
// OMP_NUM_THREADS chooses.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "util/cpu_threads.h"

namespace lctrain {
namespace {

// Sets an environment variable for one test and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class CpuThreads : public ::testing::Test {
 protected:
  void TearDown() override { at::set_num_threads(threads_before_); }
  const int threads_before_ = at::get_num_threads();
};

TEST_F(CpuThreads, UsesEveryAvailableCpuWithoutOmpNumThreads) {
  ScopedEnv omp("OMP_NUM_THREADS", nullptr);
  ScopedEnv local("LOCAL_WORLD_SIZE", nullptr);
  at::set_num_threads(1);
  EXPECT_EQ(use_available_cpu_threads(), available_cpus());
  EXPECT_EQ(at::get_num_threads(), available_cpus());
}

TEST_F(CpuThreads, SharesTheCpusAmongTheNodesRanks) {
  ScopedEnv omp("OMP_NUM_THREADS", "");
  const std::string ranks = std::to_string(available_cpus());
  ScopedEnv local("LOCAL_WORLD_SIZE", ranks.c_str());
  EXPECT_EQ(use_available_cpu_threads(), 1);
  // More ranks than CPUs still leaves each one thread.
  ScopedEnv many("LOCAL_WORLD_SIZE", std::to_string(4 * available_cpus()).c_str());
  EXPECT_EQ(use_available_cpu_threads(), 1);
  EXPECT_EQ(at::get_num_threads(), 1);
}

TEST_F(CpuThreads, LeavesAnExplicitOmpNumThreadsAlone) {
  ScopedEnv omp("OMP_NUM_THREADS", "1");
  ScopedEnv local("LOCAL_WORLD_SIZE", nullptr);
  at::set_num_threads(1);
  EXPECT_EQ(use_available_cpu_threads(), 1);
  EXPECT_EQ(at::get_num_threads(), 1);
}

}  // namespace
}  // namespace lctrain
