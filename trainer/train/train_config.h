// TrainConfig: everything a fine-tuning run needs (model, target window, data, optimizer, schedule,
// distribution, output), loaded from one YAML file plus "section.key=value" command-line overrides.
// The loader is the only place that parses these keys; the trainer, the launcher and the saved
// effective config (to_yaml) all go through it, so a key means the same thing everywhere.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "optim/lr_schedule.h"

namespace lctrain {

struct TrainConfig {
  struct Model {
    std::string path;    // Hugging Face folder to fine-tune; empty = random init from `config`
    std::string config;  // path to a config.json for random init (used when path is empty)
    uint64_t init_seed = 0;
    double init_std = 0.02;
  } model;
  struct Context {
    int64_t target_length = 0;       // L' (required, > 0)
    int64_t original_length = 0;     // L; 0 = the window the model was pre-trained at
    std::string scaling = "linear";  // linear | dynamic | yarn | llama3 | none
  } context;
  struct Data {
    std::string path;  // token shards folder or a token file (required)
    uint64_t seed = 0;
  } data;
  struct Training {
    int64_t steps = 1000;
    int64_t micro_batch_size = 1;  // sequences per rank per micro-step
    int64_t gradient_accumulation = 1;
    int64_t sequence_length = 0;        // 0 = context.target_length; never above it
    std::string precision = "bf16";     // bf16 | fp16 | fp32
    std::string reduce_dtype = "fp32";  // fp32 | bf16
    bool activation_checkpointing = true;
    int64_t activation_checkpointing_every = 1;  // recompute every Nth decoder layer (1: all)
    int64_t context_parallel = 1;     // ranks that split each sequence (ring attention); divides W
    bool fused_projections = true;    // q/k/v and gate/up as one GEMM each
    double max_grad_norm = 1.0;       // <= 0 disables clipping
    int64_t max_nonfinite_steps = 3;  // rejected steps in a row (non-finite, spikes) that stop it
    double loss_spike_factor = 10.0;  // a loss over this x the recent median is rejected; 0 = off
    std::string loss_scaling = "auto";  // auto (dynamic for fp16, none otherwise) | dynamic | none
    double loss_scale = 65536.0;        // dynamic loss scaling: the initial scale
    int64_t loss_scale_window = 2000;   // dynamic loss scaling: clean steps before it doubles
    uint64_t seed = 0;
    std::string device = "auto";  // auto (the rank's GPU when there is one, else cpu) | cpu | cuda
    double peak_tflops = 0.0;     // for MFU; 0 = the device's dense bf16 figure when known
  } training;
  struct Optimizer {
    double lr = 2e-5;
    double beta1 = 0.9;
    double beta2 = 0.95;
    double eps = 1e-8;
    double weight_decay = 0.0;
  } optimizer;
  using Schedule = LrScheduleOptions;
  Schedule schedule;
  struct Distributed {
    std::string backend = "auto";  // auto | gloo | nccl
    int64_t timeout_seconds = 600;
  } distributed;
  struct Output {
    std::string dir = "out/run";
    int64_t log_every = 1;
    int64_t checkpoint_every = 0;  // N: every N steps and at the end; 0: at the end; -1: never
    std::string resume = "auto";   // auto (newest good checkpoint in dir) | never | a checkpoint
    int64_t keep_checkpoints = 2;  // >= 1: the newest N are kept, older ones deleted
    bool save_final = true;        // write <dir>/final (Hugging Face layout) at the end
    bool overwrite = false;        // resume=never over a run: move it aside and start over
    bool allow_config_changes = false;  // resume despite computation-changing differences
  } output;

  // Loads YAML, applies "dotted.key=value" overrides (e.g. "training.steps=10"), validates.
  // Paths inside the config are kept as written (relative ones resolve against the working
  // directory, not the YAML's folder). Every failure is an lctrain::Error naming the file and key.
  static TrainConfig load(const std::filesystem::path& yaml_file,
                          const std::vector<std::string>& overrides = {});
  // The same from text; `source` names it in errors.
  static TrainConfig from_yaml_text(const std::string& text, const std::string& source,
                                    const std::vector<std::string>& overrides = {});
  // The effective config as YAML text (every key, defaults included): saved into the output dir
  // and re-loadable by from_yaml_text to an equal config.
  std::string to_yaml() const;
  // Checks every range and cross-key rule the loader checks; for configs built in code.
  void validate(const std::string& source = "train config") const;
  // "section.key" for every key the loader knows, in to_yaml order.
  static std::vector<std::string> keys();

  // ("section.key", value as text) for every key, in to_yaml order: for comparing configs.
  std::vector<std::pair<std::string, std::string>> values() const;
  // ("section.key", what it means) for every key, in to_yaml order: the configuration reference.
  static std::vector<std::pair<std::string, std::string>> reference();

  int64_t effective_sequence_length() const;
  // Data-parallel groups among `world_size` ranks: world_size / training.context_parallel.
  // Throws an Error naming the key when the division is not exact.
  int64_t data_parallel_size(int64_t world_size) const;
  // Sequences per optimizer step across `world_size` ranks (each group reads its own).
  int64_t global_batch_size(int64_t world_size) const {
    return training.micro_batch_size * training.gradient_accumulation *
           data_parallel_size(world_size);
  }
};

// Field-by-field equality over every key the loader knows.
bool operator==(const TrainConfig& a, const TrainConfig& b);
inline bool operator!=(const TrainConfig& a, const TrainConfig& b) { return !(a == b); }

}  // namespace lctrain
