// LibTorch 1.13 vs 2.x differences in c10d (the distributed runtime), kept beside torch_compat.h.
// In 1.13 a backend such as ProcessGroupGloo *is* a c10d::ProcessGroup; from 2.0 it is a
// c10d::Backend held by a ProcessGroup. lctrain talks to the backend object directly, whose
// collective signatures are the same in both.
#pragma once

#include <torch/version.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#ifdef LCTRAIN_WITH_CUDA
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace lctrain::compat {

#if TORCH_VERSION_MAJOR >= 2
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

}  // namespace lctrain::compat
