#include "distributed/process_mesh.h"

#include "util/error.h"

namespace lctrain {

ProcessMesh ProcessMesh::make(int world_size, int context_parallel, int rank) {
  LCTRAIN_CHECK(context_parallel > 0 && world_size % context_parallel == 0,
                "training.context_parallel={} does not divide the {} rank(s) into equal groups "
                "(each sequence is split over that many ranks; use a divisor of the world size)",
                context_parallel, world_size);
  LCTRAIN_CHECK(rank >= 0 && rank < world_size, "rank {} outside a world of {}", rank, world_size);
  return {world_size, context_parallel, rank};
}

CommunicatorRing::CommunicatorRing(ProcessMesh mesh, std::shared_ptr<Communicator> communicator)
    : mesh_(mesh), communicator_(std::move(communicator)) {
  LCTRAIN_CHECK(
      communicator_->world_size() == mesh_.world_size && communicator_->rank() == mesh_.rank,
      "ring over rank {}/{} built on communicator rank {}/{}", mesh_.rank, mesh_.world_size,
      communicator_->rank(), communicator_->world_size());
}

std::function<torch::Tensor()> CommunicatorRing::pass(const torch::Tensor& outgoing) {
  const int places = mesh_.context_parallel;
  const int place = mesh_.context_rank();
  const torch::Tensor sent = outgoing.contiguous();
  if (places == 1) return [sent] { return sent; };
  torch::Tensor received = torch::empty_like(sent);
  auto pending = std::make_shared<PendingCollective>(
      communicator_->exchange_async(sent, mesh_.group_member((place + 1) % places), received,
                                    mesh_.group_member((place + places - 1) % places)));
  return [pending, received, sent] {
    pending->wait();
    return received;
  };
}

}  // namespace lctrain
