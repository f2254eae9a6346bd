#include "distributed/distributed_env.h"

#include <cstdlib>

#include "util/error.h"

namespace lctrain {
namespace {

int parse_int(const std::string& name, const std::string& text) {
  try {
    size_t used = 0;
    const int value = std::stoi(text, &used);
    LCTRAIN_CHECK(used == text.size(), "environment variable {}='{}' is not an integer", name,
                  text);
    return value;
  } catch (const std::logic_error&) {
    throw Error("environment variable {}='{}' is not an integer", name, text);
  }
}

// The first host of a Slurm node list: "node[3-5,9]" -> "node3", "a,b" -> "a".
std::string first_slurm_host(const std::string& node_list) {
  const size_t bracket = node_list.find('[');
  if (bracket == std::string::npos) return node_list.substr(0, node_list.find(','));
  const std::string prefix = node_list.substr(0, bracket);
  const size_t end = node_list.find_first_of("-,]", bracket + 1);
  return prefix + node_list.substr(bracket + 1, end - bracket - 1);
}

}  // namespace

DistributedEnv DistributedEnv::from_environment() {
  return from_lookup([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

DistributedEnv DistributedEnv::from_lookup(
    const std::function<std::optional<std::string>(const std::string&)>& lookup) {
  const auto integer = [&](const std::string& name) -> std::optional<int> {
    const auto value = lookup(name);
    if (!value) return std::nullopt;
    return parse_int(name, *value);
  };
  DistributedEnv env;
  if (lookup("RANK") || lookup("WORLD_SIZE")) {
    // torchrun, `lctrain launch`, or a user exporting the variables by hand.
    env.launcher = "torchrun";
    LCTRAIN_CHECK(lookup("RANK") && lookup("WORLD_SIZE"),
                  "RANK and WORLD_SIZE must be set together (found only {})",
                  lookup("RANK") ? "RANK" : "WORLD_SIZE");
    env.rank = *integer("RANK");
    env.world_size = *integer("WORLD_SIZE");
    env.local_rank = integer("LOCAL_RANK").value_or(env.rank);
    env.master_addr = lookup("MASTER_ADDR").value_or("127.0.0.1");
    env.master_port = integer("MASTER_PORT").value_or(29500);
    env.agent_hosts_store = lookup("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
    env.restart_count = integer("TORCHELASTIC_RESTART_COUNT").value_or(0);
  } else if (lookup("SLURM_PROCID") && lookup("SLURM_NTASKS")) {
    env.launcher = "slurm";
    env.rank = *integer("SLURM_PROCID");
    env.world_size = *integer("SLURM_NTASKS");
    env.local_rank = integer("SLURM_LOCALID").value_or(0);
    // MASTER_ADDR/PORT win when the batch script exports them; else the first node, a port
    // derived from the job id so that concurrent jobs on a node do not collide.
    const auto node_list =
        lookup("SLURM_STEP_NODELIST") ? lookup("SLURM_STEP_NODELIST") : lookup("SLURM_NODELIST");
    env.master_addr =
        lookup("MASTER_ADDR")
            .value_or(node_list ? first_slurm_host(*node_list) : std::string("127.0.0.1"));
    const int job_id = integer("SLURM_JOB_ID").value_or(0);
    env.master_port = integer("MASTER_PORT").value_or(20000 + job_id % 10000);
  }
  LCTRAIN_CHECK(env.world_size >= 1, "world size must be >= 1, got {}", env.world_size);
  LCTRAIN_CHECK(env.rank >= 0 && env.rank < env.world_size,
                "rank {} is outside the world of {} processes", env.rank, env.world_size);
  LCTRAIN_CHECK(env.local_rank >= 0, "local rank must be >= 0, got {}", env.local_rank);
  LCTRAIN_CHECK(env.restart_count >= 0, "TORCHELASTIC_RESTART_COUNT must be >= 0, got {}",
                env.restart_count);
  LCTRAIN_CHECK(env.master_port > 0 && env.master_port < 65536, "MASTER_PORT {} is not a port",
                env.master_port);
  return env;
}

}  // namespace lctrain
