// LibTorch 1.13 vs 2.x differences in c10d (the distributed runtime), kept beside torch_compat.h.
// In 1.13 a backend such as ProcessGroupGloo *is* a c10d::ProcessGroup; from 2.0 it is a
// c10d::Backend held by a ProcessGroup. lctrain talks to the backend object directly, whose
// collective signatures are the same in both.
#pragma once

#include <torch/version.h>

#include <cstdlib>
#include <string>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "util/torch_compat.h"

#ifdef LCTRAIN_WITH_CUDA
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace lctrain::compat {

#if TORCH_VERSION_MAJOR >= 2
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

// The rendezvous store. From 2.4 TCPStore asks for its libuv backend by default, which some
// builds lack (Debian's 2.6 throws "use_libuv was requested but PyTorch was build without libuv
// support"): there, or when USE_LIBUV=0 (the switch torch's Python side reads), the classic
// socket backend. Both speak the same protocol, so clients and servers of either kind meet.
inline c10::intrusive_ptr<c10d::TCPStore> make_tcp_store(const std::string& host,
                                                         c10d::TCPStoreOptions options) {
#if LCTRAIN_TORCH_AT_LEAST(2, 4)
  const char* use_libuv = std::getenv("USE_LIBUV");
  if (use_libuv != nullptr && std::string(use_libuv) == "0") options.useLibUV = false;
  if (options.useLibUV) {
    try {
      return c10::make_intrusive<c10d::TCPStore>(host, options);
    } catch (const c10::Error& error) {
      if (std::string(error.what()).find("libuv") == std::string::npos) throw;
      options.useLibUV = false;
    }
  }
#endif
  return c10::make_intrusive<c10d::TCPStore>(host, options);
}

}  // namespace lctrain::compat
