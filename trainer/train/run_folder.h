// The rules of a run folder (output.dir): one job at a time in it (a lock that rank 0 holds for
// the job's life), one run per folder (starting over moves the old run aside, and only when
// asked), and a resumed run computes what the run that wrote its checkpoint computed, unless the
// user says the change is intended.
#pragma once

#include <filesystem>
#include <optional>

#include "checkpoint/checkpoint_manifest.h"
#include "distributed/communicator.h"
#include "model/llama_config.h"
#include "train/train_config.h"
#include "util/file_lock.h"

namespace lctrain {

class RunFolderClaim {
 public:
  // Collective. Rank 0 creates the folder and locks it; when another live job holds the lock,
  // every rank fails with the holder's host and pid. Then, with output.resume=never over a folder
  // that holds a run, refuses unless output.overwrite (which moves that run aside), and removes
  // checkpoints that were never finished.
  RunFolderClaim(const TrainConfig& config, Communicator& communicator);

 private:
  std::optional<FileLock> lock_;
};

// Collective: every rank's effective config equals rank 0's (one hash per key, all-gathered); a
// mismatch stops every rank with the differing keys and ranks named.
void check_ranks_agree(const TrainConfig& config, Communicator& communicator);

// Compares the checkpoint's run with this one. Changes that alter the computation (model and
// its RoPE, sequence length, global batch) are refused, or warned with output.allow_config_changes;
// every other changed key is logged (on the main rank).
void check_resume_compatible(const checkpoint::Manifest& saved, const TrainConfig& config,
                             const LlamaConfig& model_config, int64_t global_batch, bool main_rank);

}  // namespace lctrain
