// One optimizer step of a TrainingJob: forward and backward over the rank's micro-batches, the
// step's two figures (the loss averaged over ranks, the global gradient norm) read by the host
// once, and the AdamW update, applied only when the loss scaler and the StepGuard allow it.
#pragma once

#include <cstdint>
#include <string>

#include "train/step_guard.h"
#include "train/training_job.h"

namespace lctrain {

struct StepOutcome {
  double loss = 0.0;
  double grad_norm = 0.0;  // NaN when fp16 gradients overflowed
  double lr = 0.0;
  double loss_scale = 1.0;  // the scale this step ran at (fp16; 1 otherwise)
  bool applied = false;     // the optimizer updated the shards
  bool overflowed = false;  // fp16: the loss scaler skipped it (expected, not a failure)
  std::string rejected;     // why the guard rejected it; "" otherwise
};

// Runs optimizer step `step` (0-based) and advances the job's state (step, data position).
StepOutcome train_step(TrainingJob& job, int64_t step, StepGuard& guard);

}  // namespace lctrain
