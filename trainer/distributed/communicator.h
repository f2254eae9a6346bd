// Communicator: the collectives lctrain needs, over Gloo (CPU) or NCCL (CUDA), with Gloo's gaps
// filled: Gloo in LibTorch 1.13 has no bf16 arithmetic, no reduce-scatter, no flat all-gather and
// no AVG. With one process every collective is the identity and no process group exists.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "distributed/distributed_env.h"

namespace lctrain {

// A collective started asynchronously; wait() blocks until its output is ready.
class PendingCollective {
 public:
  PendingCollective() = default;
  explicit PendingCollective(std::function<void()> wait) : wait_(std::move(wait)) {}
  void wait();

 private:
  std::function<void()> wait_;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  // Rendezvous through c10d's TCPStore at MASTER_ADDR:MASTER_PORT and create the backend:
  // "nccl" for CUDA devices, "gloo" for CPU ("auto" picks by device). A peer that does not
  // arrive, or dies mid-collective, ends in an Error after `timeout` instead of a hang.
  static std::shared_ptr<Communicator> create(const DistributedEnv& env, const std::string& backend,
                                              std::chrono::milliseconds timeout,
                                              const torch::Device& device);
  // The one-process communicator.
  static std::shared_ptr<Communicator> single_process();

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend_name() const = 0;

  // In-place sum over ranks (any floating dtype).
  virtual void all_reduce_sum(torch::Tensor& tensor) = 0;
  // full [world * n] <- every rank's shard [n], in rank order. Contiguous 1-D tensors, same dtype.
  virtual PendingCollective all_gather_async(torch::Tensor& full, const torch::Tensor& shard) = 0;
  // shard [n] <- this rank's slice of the sum over ranks of full [world * n].
  virtual void reduce_scatter_sum(torch::Tensor& shard, const torch::Tensor& full) = 0;
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;
  // Point to point, without waiting: sends `outgoing` to rank `to` while receiving `incoming`
  // (allocated by the caller with the sender's shape and dtype) from rank `from`. Contiguous
  // tensors. Every rank that exchanges with another calls this in the same order as its peer.
  virtual PendingCollective exchange_async(const torch::Tensor& outgoing, int to,
                                           torch::Tensor& incoming, int from) = 0;
  virtual void barrier() = 0;

  void all_gather(torch::Tensor& full, const torch::Tensor& shard) {
    all_gather_async(full, shard).wait();
  }
  double sum_over_ranks(double value);
  double max_over_ranks(double value);
};

}  // namespace lctrain
