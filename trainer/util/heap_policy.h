// How freed memory goes back to the system. glibc serves every allocation above its mmap
// threshold (adaptive, at most 32 MiB) with a fresh mmap and unmaps it on free, so each large
// tensor of a training step is page-faulted in again, step after step. Measured on the demo's
// fine-tuning (one thread, 8 steps of 4 x 1024 tokens): 17-26 s of its 53-67 s were system time;
// with freed memory kept in the heap, 1-2 s, and 1.4-1.6x the tokens/s, for 0.2-0.26 GiB more
// peak RSS. PyTorch users get the same from jemalloc or tcmalloc.
#pragma once

namespace lctrain {

// Raises glibc's mmap and trim thresholds (256 MiB / 1 GiB) unless MALLOC_MMAP_THRESHOLD_ or
// MALLOC_TRIM_THRESHOLD_ are set, which then keep their meaning. A rank of a multi-rank job
// (WORLD_SIZE > 1) takes a 1 MiB mmap threshold instead: host memory per rank counts more there
// than page faults. No effect without glibc.
void keep_freed_memory_in_heap();

}  // namespace lctrain
