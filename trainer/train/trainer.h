// The fine-tuning loop behind `lctrain train`: load or initialise the model, shard it across the
// job's ranks, and run the paper's recipe (AdamW, warmup then constant LR, PI-scaled RoPE) on
// fixed-length token sequences, logging metrics and writing the final model.
#pragma once

#include "train/train_config.h"

namespace lctrain {

struct TrainingSummary {
  int64_t steps = 0;
  double final_loss = 0.0;
  double tokens_per_second = 0.0;
  bool stopped = false;  // by SIGTERM/SIGINT, after saving a checkpoint
};

TrainingSummary run_training(const TrainConfig& config);

}  // namespace lctrain
