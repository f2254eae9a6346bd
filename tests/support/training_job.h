// A tiny fp32 training job run through the real CLI (`lctrain launch -- train`), and what it
// leaves behind: per-step losses, checkpoints, the final model. Shared by the checkpoint and
// launcher tests.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>

#include "support/test_support.h"

namespace lctrain::testing {

class TrainingJob {
 public:
  // Writes a 2-layer random-init model config, a token file and a recipe (fp32, CPU, 2 sequences
  // per rank, checkpoint every 5 steps, log every step) into `scratch`.
  explicit TrainingJob(const ScratchDir& scratch);

  // `train --config run.yaml output.dir=<out> extra`, for any launcher.
  std::string train_arguments(const std::string& out, const std::string& extra = "") const;
  // `lctrain launch --nproc-per-node ranks -- ` and the above.
  std::string command(const std::string& out, int ranks, const std::string& extra = "") const;
  CommandResult run(const std::string& out, int ranks, const std::string& extra = "") const;

  std::filesystem::path out(const std::string& name) const { return scratch_ / name; }
  // step -> loss from <out>/metrics.jsonl (a step logged twice, before a crash and after the
  // resume, keeps its last value).
  std::map<int64_t, double> losses(const std::string& out) const;
  // The tensors of <out>/final/model.safetensors.
  std::map<std::string, torch::Tensor> final_tensors(const std::string& out) const;

 private:
  const ScratchDir& scratch_;
};

// Every tensor of `a` equals `b`'s exactly (same names too).
::testing::AssertionResult tensors_equal(const std::map<std::string, torch::Tensor>& a,
                                         const std::map<std::string, torch::Tensor>& b);

}  // namespace lctrain::testing
