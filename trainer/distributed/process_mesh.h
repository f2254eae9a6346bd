// ProcessMesh: how the W ranks divide the work (torchtitan's ParallelDims), the one truth for who
// shares a sequence with whom. W / C data-parallel groups of C consecutive ranks: the ranks of a
// group split each of their sequences between them (context parallelism, ring attention), the
// groups read different sequences. FSDP shards the weights over all W ranks whatever C is.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "distributed/communicator.h"
#include "model/ring_attention.h"

namespace lctrain {

struct ProcessMesh {
  int world_size = 1;
  int context_parallel = 1;  // C: ranks per sequence
  int rank = 0;

  // Throws an Error naming training.context_parallel unless C divides W.
  static ProcessMesh make(int world_size, int context_parallel, int rank);

  int data_parallel_size() const { return world_size / context_parallel; }
  int data_parallel_rank() const { return rank / context_parallel; }
  int context_rank() const { return rank % context_parallel; }  // place in its group's ring
  // The global rank of the group member at ring place `place`.
  int group_member(int place) const { return data_parallel_rank() * context_parallel + place; }
};

// The ring of this rank's context-parallel group over the Communicator's point-to-point exchange
// (Gloo send/recv on CPUs, NCCL on GPUs): pass() sends to the next place, receives from the
// previous one, and computation goes on until its result is waited for.
class CommunicatorRing final : public KeyValueRing {
 public:
  CommunicatorRing(ProcessMesh mesh, std::shared_ptr<Communicator> communicator);

  int64_t size() const override { return mesh_.context_parallel; }
  int64_t position() const override { return mesh_.context_rank(); }
  std::function<torch::Tensor()> pass(const torch::Tensor& outgoing) override;

 private:
  ProcessMesh mesh_;
  std::shared_ptr<Communicator> communicator_;
};

}  // namespace lctrain
