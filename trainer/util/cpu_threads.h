// How many threads LibTorch's CPU kernels use. LibTorch sizes its pool from what cpuinfo calls
// physical cores, which on some virtual machines is 1 for 2 usable CPUs: measured on this
// project's 2-CPU machine, a CPU training step ran 1.44x faster with 2 threads than with the
// default 1. So unless OMP_NUM_THREADS says otherwise, lctrain uses every CPU it may run on,
// shared among the ranks of this node (LOCAL_WORLD_SIZE, set by torchrun and `lctrain launch`).
#pragma once

namespace lctrain {

// Applies the rule above; returns the thread count in force.
int use_available_cpu_threads();

// CPUs this process may run on (its affinity mask), at least 1.
int available_cpus();

}  // namespace lctrain
