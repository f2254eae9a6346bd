// The single-node worker launcher behind `lctrain launch` (torchrun's local mode, without elastic
// restarts): N child processes with torchrun's rendezvous environment, their output relayed with a
// "[rank R] " prefix, signals forwarded, and a failing worker taking the others down with it.
#pragma once

#include <string>
#include <vector>

namespace lctrain::dist {

struct LaunchOptions {
  // What each worker runs: `program` is executed as-is (no PATH search) with argv `argv`
  // (argv[0] included, it is only the name the worker sees).
  std::string program;
  std::vector<std::string> argv;
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;  // 0: a free port on master_addr (only valid with nnodes == 1)
  // After a worker fails, how long the others get between SIGTERM and SIGKILL.
  double kill_timeout_s = 10.0;
};

// Runs the workers of this node to completion and returns the launcher's exit code:
//  - 0 when every worker exits 0 (also after a forwarded SIGINT/SIGTERM);
//  - otherwise the exit code of the first worker that failed, or 1 if it was killed by a signal.
// Throws lctrain::Error for bad options or a worker that cannot be started (e.g. no such program);
// workers already started are killed and reaped first.
int launch_local_workers(const LaunchOptions& options);

// A TCP port that is free on `address` right now (bind to port 0, read it back, close). Another
// process may take it before the workers bind it (as with torchrun); a fixed port avoids that.
int find_free_port(const std::string& address);

}  // namespace lctrain::dist
