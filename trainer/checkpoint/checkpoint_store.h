// Sharded checkpoints of a training job, torchtitan-style: every rank writes its parameter
// shards, AdamW moments and RNG state; rank 0 writes the manifest (checkpoint_manifest.h).
//
// <output>/checkpoints/
//   step-00000020/            manifest.json, config.yaml, rank-00000-of-00002.safetensors, ...
//   .tmp-step-00000030/       being written: never read, removed by the next save
//   latest                    "step-00000020", rewritten after each complete checkpoint
//
// A checkpoint appears by rename only after every file is written and fsynced, so a crash leaves
// either the whole folder or a .tmp- one. Reading verifies sizes and checksums first and falls
// back to the newest good checkpoint. Any world size reads any checkpoint (resharding).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <vector>

#include "checkpoint/checkpoint_manifest.h"
#include "distributed/communicator.h"
#include "distributed/flat_param_unit.h"
#include "optim/adamw.h"

namespace lctrain::checkpoint {

// Everything a checkpoint holds besides the tensors (step, data position, configs...).
using JobState = Manifest;

// Collective: every rank calls it. Writes <root>/step-<N>/ for job.step, then keeps the newest
// `keep` good checkpoints. Refuses (on every rank, before writing) when any value is not finite;
// a failed write on any rank fails every rank and leaves the earlier checkpoints as they were.
// Returns the new folder.
std::filesystem::path save(const std::filesystem::path& root, JobState job,
                           const std::vector<FlatParamUnit*>& units, const ShardedAdamW& optimizer,
                           Communicator& communicator, int64_t keep);

// Removes the .tmp- folders of checkpoints that were never finished (a job killed, a full disk).
void remove_unfinished(const std::filesystem::path& root);

// Checkpoint folders under `root`, newest first (complete or not; no .tmp- ones).
std::vector<std::filesystem::path> list(const std::filesystem::path& root);

// Why `dir` is not a loadable checkpoint, or nullopt when it is: manifest, files, sizes and
// checksums. `ranks_share` splits the checksum work: this caller checks files i with
// i % share.second == share.first.
std::optional<std::string> problem_with(const std::filesystem::path& dir,
                                        std::pair<int, int> ranks_share = {0, 1});

// Collective: the checkpoint `latest` names, or else the newest one under `root`, that every
// rank found sound, logging each one skipped and why; nullopt when there is none.
std::optional<std::filesystem::path> newest_good(const std::filesystem::path& root,
                                                 Communicator& communicator);

// Resolves what a user names (a checkpoint folder, a checkpoints root or a training output
// folder) to one sound checkpoint folder, single process (export, inspect, eval).
std::filesystem::path resolve(const std::filesystem::path& path);

// Loads this rank's shards and optimizer state from `dir`, whatever world size wrote it. The
// units must have the checkpoint's layout (same model); Error names what differs.
Manifest load(const std::filesystem::path& dir, const std::vector<FlatParamUnit*>& units,
              ShardedAdamW& optimizer, int rank, int world_size);

// A whole unit's real parameters (numel elements, fp32) put back together from every shard.
torch::Tensor read_full_unit(const std::filesystem::path& dir, const Manifest& manifest,
                             size_t unit_index);

// XXH3-64 of a file's bytes as 16 hex digits.
std::string file_xxh3(const std::filesystem::path& path);

}  // namespace lctrain::checkpoint
