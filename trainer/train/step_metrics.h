// What the trainer reports after each step: the log line (loss, LR, grad norm, tokens/s, TFLOP/s,
// MFU, peak memory, ETA) and one JSON line of metrics.jsonl, from rank 0.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>

#include "model/llama_config.h"

namespace lctrain {

struct StepResult {
  int64_t step = 0;  // 1-based: steps completed
  double loss = 0.0;
  double lr = 0.0;
  double grad_norm = 0.0;
  double seconds = 0.0;          // this step's wall time
  double elapsed_seconds = 0.0;  // since this run (or resume) started
  int64_t steps_this_run = 0;    // steps taken since start or resume, for the ETA
};

class StepMetrics {
 public:
  // `peak_tflops`: the device's dense bf16 figure (MFU is left out when unknown).
  StepMetrics(const LlamaConfig& model, int64_t sequence_length, int64_t tokens_per_step,
              int world_size, int64_t total_steps, torch::Device device,
              std::optional<double> peak_tflops);

  double tokens_per_second(const StepResult& result) const;
  // The log line's text and the metrics.jsonl record.
  std::string describe(const StepResult& result) const;
  nlohmann::json record(const StepResult& result) const;
  double eta_seconds(const StepResult& result) const;

 private:
  double flops_per_token_;  // 6 N + 12 L d T: forward and backward, attention included
  int64_t tokens_per_step_;
  int world_size_;
  int64_t total_steps_;
  torch::Device device_;
  std::optional<double> peak_tflops_;
};

}  // namespace lctrain
