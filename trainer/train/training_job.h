// TrainingJob: a fine-tuning run as built from its config, ready to step. It holds the ranks'
// process group, the sharded model with the run's RoPE, the optimizer, its schedule and loss
// scaler, the data order and the job's progress (restored from a checkpoint on resume). Building
// it is all the set-up `lctrain train` does; train_step.h steps it and trainer.cpp loops.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "checkpoint/checkpoint_store.h"
#include "data/batch_prefetcher.h"
#include "data/token_sequences.h"
#include "distributed/communicator.h"
#include "distributed/distributed_env.h"
#include "distributed/sharded_llama.h"
#include "optim/adamw.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"
#include "train/run_folder.h"
#include "train/train_config.h"

namespace lctrain {

class TrainingJob {
 public:
  // Collective: every rank builds its part (rendezvous, model shards, resume).
  explicit TrainingJob(const TrainConfig& config);
  TrainingJob(const TrainingJob&) = delete;
  TrainingJob& operator=(const TrainingJob&) = delete;

  const TrainConfig config;
  const DistributedEnv env;
  const torch::Device device;
  const std::shared_ptr<Communicator> communicator;
  const std::filesystem::path output_dir;
  const std::filesystem::path checkpoint_root;
  // The model as the run computes it and exports it: the extended window and its RoPE scaling.
  const LlamaConfig model_config;
  const int64_t sequence_length;
  const int64_t global_batch;     // sequences per optimizer step, all ranks together
  const int64_t tokens_per_step;  // global_batch x sequence_length
  const ShardingOptions sharding;

  bool is_main() const { return env.is_main(); }
  ShardedLlama& model() { return *model_; }
  std::vector<torch::Tensor>& shards() { return shards_; }
  ShardedAdamW& optimizer() { return *optimizer_; }
  const LrSchedule& schedule() const { return schedule_; }
  DynamicLossScaler& loss_scaler() { return loss_scaler_; }
  BatchPrefetcher& batches() { return *batches_; }
  // Step, data position, loss... everything a checkpoint restores besides tensors.
  checkpoint::JobState& state() { return state_; }
  // Step the run started (or resumed) at.
  int64_t first_step() const { return first_step_; }

  // Collective: writes a checkpoint of the current state and rotates old ones.
  void save_checkpoint();

 private:
  // Drops metrics.jsonl records of steps after the resumed one (they are about to be redone).
  void trim_metrics(int64_t resumed_step) const;

  // Opened before anything touches the run folder: bad data is refused without a trace.
  const TokenSequences data_;
  std::unique_ptr<RunFolderClaim> claim_;
  std::unique_ptr<ShardedLlama> model_;
  std::vector<torch::Tensor> shards_;
  std::unique_ptr<ShardedAdamW> optimizer_;
  LrSchedule schedule_;
  DynamicLossScaler loss_scaler_;
  checkpoint::JobState state_;
  int64_t first_step_ = 0;
  std::unique_ptr<BatchPrefetcher> batches_;
};

}  // namespace lctrain
