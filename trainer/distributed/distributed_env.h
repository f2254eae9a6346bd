// DistributedEnv: where this process sits in the job, read from the environment the ecosystem's
// launchers set: torchrun / `lctrain launch` (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT) or Slurm's srun (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODELIST).
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace lctrain {

struct DistributedEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // "torchrun", "slurm" or "none" (single process)
  // torchrun's agent already serves the rendezvous store at MASTER_ADDR:MASTER_PORT
  // (TORCHELASTIC_USE_AGENT_STORE=True): every rank joins it as a client, none binds the port.
  bool agent_hosts_store = false;
  // torchrun's restart attempt (TORCHELASTIC_RESTART_COUNT): each attempt rendezvouses under its
  // own keys, as keys a failed attempt left in the agent's store would mislead the next one.
  int restart_count = 0;

  // Reads the process environment. A single process without any launcher variables is rank 0
  // of 1. Inconsistent values (RANK >= WORLD_SIZE, non-numbers) raise Error naming the variable.
  static DistributedEnv from_environment();
  // Same, from a lookup function (tests pass a map).
  static DistributedEnv from_lookup(
      const std::function<std::optional<std::string>(const std::string&)>& lookup);

  bool is_distributed() const { return world_size > 1; }
  bool is_main() const { return rank == 0; }
};

}  // namespace lctrain
