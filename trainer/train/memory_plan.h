// What a training job needs per GPU and per host process, before it is started: the FSDP shards
// (fp32 parameters, gradients, AdamW moments: 16 bytes per parameter over W), the gathered units
// (the one computing plus the one prefetched, and in backward its gradient), the activations kept
// for backward (a checkpointed layer keeps its input; others keep everything) plus one layer's
// recompute, the chunked logits of the head, and the attention workspace; the host RAM of a rank;
// and a step time at a stated model-FLOPs utilisation. Estimates, meant to be within ~15% of
// measured peaks (bench/sliced_loading_memory.sh compares them on CPUs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_config.h"

namespace lctrain {

struct PlanInput {
  LlamaConfig config;
  int64_t devices = 8;                // W: ranks (GPUs, or CPU processes)
  double device_memory_bytes = 80e9;  // per GPU (or host RAM per rank on CPUs)
  double device_peak_flops = 312e12;  // dense bf16 peak per GPU
  bool cpu = false;                   // ranks on CPUs: memory is host RSS
  int64_t sequence_length = 8192;     // L'
  int64_t context_parallel = 1;       // C: ranks splitting each sequence (ring attention)
  int64_t micro_batch = 1;
  std::string precision = "bf16";  // bf16 | fp16 | fp32: the compute dtype
  int64_t checkpoint_every = 1;    // recompute every Nth layer; 0: no activation checkpointing
  double mfu = 0.4;                // model-FLOPs utilisation the step time assumes
};

struct PlanLine {
  std::string what;
  double bytes = 0.0;
};

struct Plan {
  std::vector<PlanLine> device;  // per-GPU (per-rank on CPUs) peak, by component
  double device_total = 0.0;
  double host_per_rank = 0.0;  // host RAM of a GPU rank (on CPUs: device_total is host RAM)
  double step_seconds = 0.0;   // one micro-batch step on every rank
  double tokens_per_second = 0.0;
  bool fits = false;
};

Plan make_plan(const PlanInput& input);

// The smallest change that makes a job fit, tried in order: recompute every layer, a smaller
// micro-batch, more devices (the fewest), context parallelism over more devices. Empty when it fits already; says so when nothing does.
std::string change_to_fit(const PlanInput& input);

// The plan as text: the input, the component table, the totals, and what would make it fit.
std::string describe_plan(const PlanInput& input, const Plan& plan);

}  // namespace lctrain
