#include "distributed/communicator.h"

#include <future>
#include <thread>

#include "util/error.h"
#include "util/logging.h"
#include "util/page_mapped_tensor.h"
#include "util/torch_compat_c10d.h"

namespace lctrain {
namespace {

void check_flat_pair(const torch::Tensor& full, const torch::Tensor& shard, int world_size) {
  LCTRAIN_CHECK(
      full.dim() == 1 && shard.dim() == 1 && full.is_contiguous() && shard.is_contiguous(),
      "collectives take contiguous 1-D tensors");
  LCTRAIN_CHECK(full.numel() == shard.numel() * world_size,
                "flat tensor of {} elements is not {} shards of {}", full.numel(), world_size,
                shard.numel());
  LCTRAIN_CHECK(full.scalar_type() == shard.scalar_type(), "flat tensor and shard differ in dtype");
}

class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend_name() const override { return "none"; }
  void all_reduce_sum(torch::Tensor&) override {}
  PendingCollective all_gather_async(torch::Tensor& full, const torch::Tensor& shard) override {
    check_flat_pair(full, shard, 1);
    if (!full.is_same(shard)) full.copy_(shard);
    return PendingCollective();
  }
  void reduce_scatter_sum(torch::Tensor& shard, const torch::Tensor& full) override {
    check_flat_pair(full, shard, 1);
    if (!full.is_same(shard)) shard.copy_(full);
  }
  void broadcast(torch::Tensor&, int) override {}
  PendingCollective exchange_async(const torch::Tensor& outgoing, int to, torch::Tensor& incoming,
                                   int from) override {
    LCTRAIN_CHECK(to == 0 && from == 0, "exchange with rank {}/{} in a one-process run", to, from);
    incoming.copy_(outgoing);
    return PendingCollective();
  }
  void barrier() override {}
};

void check_exchange(const torch::Tensor& outgoing, int to, const torch::Tensor& incoming, int from,
                    int world_size) {
  LCTRAIN_CHECK(to >= 0 && to < world_size && from >= 0 && from < world_size,
                "exchange with ranks {} and {} outside 0 .. {}", to, from, world_size - 1);
  LCTRAIN_CHECK(outgoing.is_contiguous() && incoming.is_contiguous() &&
                    outgoing.numel() == incoming.numel() &&
                    outgoing.scalar_type() == incoming.scalar_type(),
                "point-to-point exchange takes contiguous tensors of one size and dtype");
}

// Runs a collective and turns c10d's failures (timeouts, dead peers) into one clear Error.
template <typename Body>
auto guarded(const char* name, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Error&) {
    throw;  // already says what went wrong
  } catch (const c10::Error& error) {
    throw Error("collective {} failed (a peer may have died or timed out): {}", name,
                error.what_without_backtrace());
  } catch (const std::exception& error) {
    throw Error("collective {} failed (a peer may have died or timed out): {}", name, error.what());
  }
}

class BackendCommunicator final : public Communicator {
 public:
  BackendCommunicator(c10::intrusive_ptr<compat::CollectiveBackend> backend, int rank,
                      int world_size, std::string name, torch::Device device)
      : backend_(std::move(backend)),
        rank_(rank),
        world_size_(world_size),
        name_(std::move(name)),
        device_(device) {}

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::string backend_name() const override { return name_; }
  bool is_gloo() const { return name_ == "gloo"; }

  void all_reduce_sum(torch::Tensor& tensor) override {
    if (needs_staging(tensor)) return staged(tensor, [&](torch::Tensor& t) { all_reduce_sum(t); });
    guarded("all_reduce", [&] {
      // Gloo cannot add bf16: reduce an fp32 copy. NCCL adds bf16 natively.
      const bool widen = is_gloo() && tensor.scalar_type() == torch::kBFloat16;
      std::vector<torch::Tensor> tensors{widen ? tensor.to(torch::kFloat32) : tensor};
      backend_->allreduce(tensors)->wait();
      if (widen) tensor.copy_(tensors[0]);
    });
  }

  PendingCollective all_gather_async(torch::Tensor& full, const torch::Tensor& shard) override {
    check_flat_pair(full, shard, world_size_);
    if (needs_staging(full)) {
      torch::Tensor device_full = full.to(device_);
      all_gather_async(device_full, shard.to(device_)).wait();
      full.copy_(device_full);
      return PendingCollective();
    }
    return guarded("all_gather", [&] {
      if (!is_gloo()) {
        torch::Tensor input = shard;
        auto work = backend_->_allgather_base(full, input);
        return PendingCollective([work] { guarded("all_gather", [&] { work->wait(); }); });
      }
      // Gloo: no flat all-gather, so gather into per-rank views of `full`; bf16 travels as its
      // bits through a 2-byte dtype Gloo knows (the bytes are copied, never added).
      const bool as_bits = shard.scalar_type() == torch::kBFloat16;
      torch::Tensor target = as_bits ? full.view(torch::kHalf) : full;
      std::vector<torch::Tensor> inputs{as_bits ? shard.view(torch::kHalf) : shard};
      std::vector<std::vector<torch::Tensor>> outputs(1);
      for (int r = 0; r < world_size_; ++r) {
        outputs[0].push_back(target.narrow(0, r * shard.numel(), shard.numel()));
      }
      auto work = backend_->allgather(outputs, inputs);
      // The buffers must outlive the work: the closure keeps them.
      return PendingCollective(
          [work, outputs, inputs] { guarded("all_gather", [&] { work->wait(); }); });
    });
  }

  void reduce_scatter_sum(torch::Tensor& shard, const torch::Tensor& full) override {
    check_flat_pair(full, shard, world_size_);
    guarded("reduce_scatter", [&] {
      if (!is_gloo()) {
        torch::Tensor input = full;
        backend_->_reduce_scatter_base(shard, input)->wait();
        return;
      }
      // Gloo: all-reduce a copy and keep our slice (W times the traffic, fine on CPU).
      torch::Tensor summed = copy_page_mapped(
          full, full.scalar_type() == torch::kBFloat16 ? torch::kFloat32 : full.scalar_type());
      std::vector<torch::Tensor> tensors{summed};
      backend_->allreduce(tensors)->wait();
      shard.copy_(summed.narrow(0, rank_ * shard.numel(), shard.numel()));
    });
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    if (needs_staging(tensor)) {
      return staged(tensor, [&](torch::Tensor& t) { broadcast(t, root); });
    }
    guarded("broadcast", [&] {
      const bool as_bits = is_gloo() && tensor.scalar_type() == torch::kBFloat16;
      std::vector<torch::Tensor> tensors{as_bits ? tensor.view(torch::kHalf) : tensor};
      c10d::BroadcastOptions options;
      options.rootRank = root;
      backend_->broadcast(tensors, options)->wait();
    });
  }

  PendingCollective exchange_async(const torch::Tensor& outgoing, int to, torch::Tensor& incoming,
                                   int from) override {
    check_exchange(outgoing, to, incoming, from, world_size_);
    if (needs_staging(outgoing)) {
      torch::Tensor device_incoming = incoming.to(device_);
      exchange_async(outgoing.to(device_), to, device_incoming, from).wait();
      incoming.copy_(device_incoming);
      return PendingCollective();
    }
    // Tags keep concurrent exchanges between the same two ranks apart; both sides count alike.
    const int tag = next_exchange_tag_;
    next_exchange_tag_ = (next_exchange_tag_ + 1) % (1 << 30);
    return guarded("send/recv", [&] {
      std::vector<torch::Tensor> sent{outgoing};
      std::vector<torch::Tensor> received{incoming};
      // NCCL posts the two in this order, runs a pair's traffic on one stream and creates a
      // pair's communicator on first use, blocking: if every rank of a ring sent first, each
      // would wait on a peer waiting on another. Odd ranks receive first; around any ring (the
      // context-parallel groups' are consecutive ranks) a rank that sends first then meets one
      // that receives first, and the rest follow.
      const bool receive_first = rank_ % 2 == 1;
      decltype(backend_->send(sent, to, tag)) send_work, receive_work;
      if (receive_first) receive_work = backend_->recv(received, from, tag);
      send_work = backend_->send(sent, to, tag);
      if (!receive_first) receive_work = backend_->recv(received, from, tag);
      // The buffers must outlive the work: the closure keeps them.
      return PendingCollective([send_work, receive_work, sent, received] {
        guarded("send/recv", [&] {
          send_work->wait();
          receive_work->wait();
        });
      });
    });
  }

  void barrier() override {
    guarded("barrier", [&] { backend_->barrier()->wait(); });
  }

 private:
  // NCCL moves only CUDA tensors: small host values (losses, norms, checksums) go through the
  // rank's GPU and back.
  bool needs_staging(const torch::Tensor& tensor) const {
    return name_ == "nccl" && !tensor.is_cuda();
  }
  template <typename Collective>
  void staged(torch::Tensor& tensor, Collective&& collective) {
    torch::Tensor on_device = tensor.to(device_);
    collective(on_device);
    tensor.copy_(on_device);
  }

  c10::intrusive_ptr<compat::CollectiveBackend> backend_;
  int rank_;
  int world_size_;
  std::string name_;
  torch::Device device_;
  int next_exchange_tag_ = 0;
};

bool is_loopback(const std::string& address) {
  return address == "localhost" || address.rfind("127.", 0) == 0 || address == "::1";
}

}  // namespace

void PendingCollective::wait() {
  if (wait_) {
    auto wait = std::move(wait_);
    wait_ = nullptr;
    wait();
  }
}

namespace {

// The rendezvous store (c10d's TCPStore, under this attempt's prefix) once every rank has joined
// it. Each rank adds itself to a counter and waits for the count to reach the world size, so a
// rank that waits in vain can say how many joined.
c10::intrusive_ptr<c10d::Store> connect_and_count(const DistributedEnv& env,
                                                  const std::string& name,
                                                  std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(env.master_port);
  // Under torchrun the agent serves the store on MASTER_PORT already; binding it would fail.
  store_options.isServer = env.rank == 0 && !env.agent_hosts_store;
  store_options.numWorkers = static_cast<size_t>(env.world_size);
  store_options.waitWorkers = false;  // counted below, where the count can be reported
  store_options.timeout = timeout;
  auto tcp_store = compat::make_tcp_store(env.master_addr, store_options);
  auto store = c10::make_intrusive<c10d::PrefixStore>(
      fmt::format("lctrain/attempt_{}/{}", env.restart_count, name), tcp_store);
  const std::string key = "lctrain_joined";
  store->add(key, 1);
  for (int64_t joined = store->add(key, 0); joined < env.world_size; joined = store->add(key, 0)) {
    LCTRAIN_CHECK(std::chrono::steady_clock::now() < deadline,
                  "rendezvous at {}:{}: only {} of {} ranks joined within {} s "
                  "(distributed.timeout_seconds); the others did not start or cannot reach it",
                  env.master_addr, env.master_port, joined, env.world_size, timeout.count() / 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return store;
}

// connect_and_count() on a watchdog thread. A port held by something other than the store (an
// HTTP server, any listener that accepts but never answers as a c10d store) leaves the store's
// handshake waiting for a reply forever, whatever its timeout: past the timeout (and a few
// seconds for the store's own, more precise errors) the rank gives up with the address named.
// The stuck thread is left behind; it only holds what it owns, and the process is ending.
c10::intrusive_ptr<c10d::Store> join_store(const DistributedEnv& env, const std::string& name,
                                           std::chrono::milliseconds timeout) {
  auto task = std::make_shared<std::packaged_task<c10::intrusive_ptr<c10d::Store>()>>(
      [env, name, timeout] { return connect_and_count(env, name, timeout); });
  auto joined = task->get_future();
  std::thread([task] { (*task)(); }).detach();
  if (joined.wait_for(timeout + std::chrono::seconds(5)) == std::future_status::timeout) {
    throw Error(
        "rendezvous at {}:{}: no answer as a c10d store within {} s (distributed.timeout_seconds)"
        "{}",
        env.master_addr, env.master_port, timeout.count() / 1000,
        env.rank == 0 && !env.agent_hosts_store
            ? ""
            : "; is that port held by another service, or is the master node stuck?");
  }
  // The store's own failures (connection refused until the timeout, a reply that is not the
  // store's) with the address and timeout they concern.
  const auto failed = [&](const std::string& reason) {
    return Error("rendezvous at {}:{} failed (timeout {} s, distributed.timeout_seconds): {}",
                 env.master_addr, env.master_port, timeout.count() / 1000, reason);
  };
  try {
    return joined.get();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& error) {
    throw failed(error.what_without_backtrace());
  } catch (const std::exception& error) {
    throw failed(error.what());
  }
}

}  // namespace

std::shared_ptr<Communicator> Communicator::single_process() {
  return std::make_shared<SingleProcessCommunicator>();
}

std::shared_ptr<Communicator> Communicator::create(const DistributedEnv& env,
                                                   const std::string& backend,
                                                   std::chrono::milliseconds timeout,
                                                   const torch::Device& device) {
  // One rank needs no process group, unless a launcher started it and a backend was named:
  // then the group is real, so that e.g. NCCL can be exercised on a single GPU.
  const bool named_backend = backend != "auto";
  if (!env.is_distributed() && !(env.launcher != "none" && named_backend)) return single_process();
  std::string name = backend;
  if (name == "auto") name = device.is_cuda() ? "nccl" : "gloo";
  LCTRAIN_CHECK(name == "gloo" || name == "nccl",
                "unknown distributed backend '{}' (auto, gloo, nccl)", name);
  log()->info("rank {}/{}: rendezvous at {}:{}{} ({}, timeout {} s)", env.rank, env.world_size,
              env.master_addr, env.master_port, env.agent_hosts_store ? " (torchrun's store)" : "",
              name, timeout.count() / 1000);
  return guarded("rendezvous", [&]() -> std::shared_ptr<Communicator> {
    auto store = join_store(env, name, timeout);
    if (name == "nccl") {
#ifdef LCTRAIN_WITH_CUDA
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      auto nccl =
          c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, options);
      return std::make_shared<BackendCommunicator>(nccl, env.rank, env.world_size, name, device);
#else
      throw Error("backend nccl needs a CUDA build of lctrain (this LibTorch has no CUDA)");
#endif
    }
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME")) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
    } else if (is_loopback(env.master_addr)) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    options->threads = 2;
    auto gloo =
        c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, options);
    return std::make_shared<BackendCommunicator>(gloo, env.rank, env.world_size, name, device);
  });
}

double Communicator::sum_over_ranks(double value) {
  auto tensor = torch::tensor({value}, torch::kFloat64);
  all_reduce_sum(tensor);
  return tensor.item<double>();
}

double Communicator::max_over_ranks(double value) {
  // No MAX needed elsewhere: gather every rank's value and take the largest.
  auto full = torch::zeros({world_size()}, torch::kFloat64);
  all_gather(full, torch::tensor({value}, torch::kFloat64));
  return full.max().item<double>();
}

}  // namespace lctrain
