// Global gradient norm over every rank's shards, and clipping to a maximum norm, computed where
// the gradients live: nothing is read back to the host, so on a GPU the optimizer step is queued
// right behind the backward pass instead of waiting for it (no host sync inside the step).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "distributed/communicator.h"

namespace lctrain {

// Returns the global L2 norm of the gradients (fp64, 0-dim, on the shards' device) before
// clipping. When max_norm > 0 every gradient is multiplied by min(1, max_norm / (norm + 1e-6)),
// torch.nn.utils.clip_grad_norm_'s coefficient. Shards without a gradient count as zero; every
// rank must call this (the squares are summed over ranks).
torch::Tensor clip_gradients(const std::vector<torch::Tensor>& shards, double max_norm,
                             Communicator& communicator);

}  // namespace lctrain
