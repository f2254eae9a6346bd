// DistributedEnv read from what launchers set: torchrun (with its agent's store and restart
// count), Slurm, nothing at all, and inconsistent values named in the error.
#include <gtest/gtest.h>

#include <map>

#include "distributed/distributed_env.h"
#include "support/error_expectations.h"

namespace lctrain {
namespace {

using testing::error_message_of;
using testing::expect_contains;

DistributedEnv read(const std::map<std::string, std::string>& variables) {
  return DistributedEnv::from_lookup([&](const std::string& name) -> std::optional<std::string> {
    const auto found = variables.find(name);
    if (found == variables.end()) return std::nullopt;
    return found->second;
  });
}

TEST(DistributedEnv, NoLauncherIsOneProcess) {
  const DistributedEnv env = read({});
  EXPECT_EQ(env.launcher, "none");
  EXPECT_EQ(env.world_size, 1);
  EXPECT_FALSE(env.is_distributed());
  EXPECT_FALSE(env.agent_hosts_store);
}

TEST(DistributedEnv, TorchrunsAgentStoreAndRestartCount) {
  const std::map<std::string, std::string> torchrun = {{"RANK", "3"},
                                                       {"WORLD_SIZE", "4"},
                                                       {"LOCAL_RANK", "1"},
                                                       {"MASTER_ADDR", "n0"},
                                                       {"MASTER_PORT", "29400"},
                                                       {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                                       {"TORCHELASTIC_RESTART_COUNT", "2"}};
  const DistributedEnv env = read(torchrun);
  EXPECT_EQ(env.launcher, "torchrun");
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_addr, "n0");
  EXPECT_EQ(env.master_port, 29400);
  EXPECT_TRUE(env.agent_hosts_store);
  EXPECT_EQ(env.restart_count, 2);

  // `lctrain launch` and hand-set variables: rank 0 serves the store itself.
  auto plain = torchrun;
  plain.erase("TORCHELASTIC_USE_AGENT_STORE");
  plain.erase("TORCHELASTIC_RESTART_COUNT");
  EXPECT_FALSE(read(plain).agent_hosts_store);
  EXPECT_EQ(read(plain).restart_count, 0);
  plain["TORCHELASTIC_USE_AGENT_STORE"] = "False";
  EXPECT_FALSE(read(plain).agent_hosts_store);
}

TEST(DistributedEnv, SlurmWithoutMasterVariables) {
  const DistributedEnv env = read({{"SLURM_PROCID", "5"},
                                   {"SLURM_NTASKS", "8"},
                                   {"SLURM_LOCALID", "1"},
                                   {"SLURM_NODELIST", "gpu[12-13]"},
                                   {"SLURM_JOB_ID", "123456"}});
  EXPECT_EQ(env.launcher, "slurm");
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.master_addr, "gpu12");
  EXPECT_EQ(env.master_port, 20000 + 123456 % 10000);
  EXPECT_FALSE(env.agent_hosts_store);
}

TEST(DistributedEnv, InconsistentValuesNameTheVariable) {
  const auto error_of = [](const std::map<std::string, std::string>& variables) {
    return error_message_of([&] { (void)read(variables); });
  };
  expect_contains(error_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}}), {"outside the world of 4"});
  expect_contains(error_of({{"RANK", "0"}}), {"RANK and WORLD_SIZE must be set together"});
  expect_contains(error_of({{"RANK", "0"}, {"WORLD_SIZE", "two"}}), {"WORLD_SIZE='two'"});
  expect_contains(
      error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"TORCHELASTIC_RESTART_COUNT", "-1"}}),
      {"TORCHELASTIC_RESTART_COUNT"});
  expect_contains(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}),
                  {"MASTER_PORT 70000"});
}

}  // namespace
}  // namespace lctrain
