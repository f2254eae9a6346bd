#include "util/heap_policy.h"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lctrain {

void keep_freed_memory_in_heap() {
#if defined(__GLIBC__)
  const char* world = std::getenv("WORLD_SIZE");
  const bool one_of_several_ranks = world != nullptr && std::atoi(world) > 1;
  // Ranks that share a node's host memory (a GPU job's 8 ranks; on a GPU the activations do not
  // live in this heap anyway) keep it lean: blocks from 1 MiB go back on free. Measured on
  // bench/sliced_loading_memory.sh's W = 4 run: 2.32 GiB of peak RSS per rank with the 256 MiB
  // threshold, 2.08 GiB with this one.
  const int threshold = one_of_several_ranks ? 1 << 20 : 256 << 20;
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, threshold);
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace lctrain
