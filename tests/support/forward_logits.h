// `lctrain forward` on a model folder, as a user runs it: the f32 logits of the ids in a file.
#pragma once

#include <torch/torch.h>

#include <filesystem>

namespace lctrain::testing {

// Runs `lctrain forward --model MODEL --ids IDS --out OUT --dtype f32` (a failed run is a test
// failure) and returns the logits it wrote.
torch::Tensor forward_logits(const std::filesystem::path& model, const std::filesystem::path& ids,
                             const std::filesystem::path& out);

}  // namespace lctrain::testing
