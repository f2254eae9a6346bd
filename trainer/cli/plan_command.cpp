// `lctrain plan MODEL`: per-GPU memory, host RAM per rank, step time, and whether a job fits,
// with the smallest change that would make it fit (train/memory_plan.h), before any GPU is used.
#include <iostream>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "io/hf_model_dir.h"
#include "io/sharded_safetensors.h"
#include "train/memory_plan.h"
#include "util/error.h"

namespace lctrain::cli {
namespace {

struct GpuKind {
  double memory_bytes;
  double bf16_flops;  // dense peak
};

// Dense bf16 peaks from the vendors' data sheets (SXM parts).
const std::map<std::string, GpuKind>& gpu_kinds() {
  static const std::map<std::string, GpuKind> kinds = {{"a100-40gb", {40e9, 312e12}},
                                                       {"a100-80gb", {80e9, 312e12}},
                                                       {"h100-80gb", {80e9, 989e12}},
                                                       {"h200", {141e9, 989e12}}};
  return kinds;
}

}  // namespace

Action add_plan_command(CLI::App& app) {
  struct Options {
    std::string model;
    std::string gpu = "a100-80gb";
    std::string gpu_memory;
    double gpu_tflops = 0.0;
    int64_t gpus = 8;
    int64_t length = 8192;
    int64_t context_parallel = 1;
    int64_t micro_batch = 1;
    std::string precision = "bf16";
    int64_t checkpoint_every = 1;
    double mfu = 0.4;
    bool cpu = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand(
      "plan", "Estimate per-GPU memory, host RAM and step time of a training job; say if it fits");
  command->add_option("model", options->model, "model folder, or its config.json")->required();
  command->add_option("--gpu", options->gpu, "a100-40gb, a100-80gb, h100-80gb or h200")
      ->capture_default_str();
  command->add_option("--gpu-memory", options->gpu_memory, "overrides --gpu's memory (e.g. 80GB)");
  command->add_option("--gpu-tflops", options->gpu_tflops, "overrides --gpu's dense bf16 TFLOP/s");
  command->add_option("--gpus", options->gpus, "number of GPUs (ranks)")->capture_default_str();
  command->add_option("--length", options->length, "L': tokens per sequence")
      ->capture_default_str();
  command
      ->add_option("--context-parallel", options->context_parallel,
                   "C: ranks splitting each sequence (training.context_parallel)")
      ->capture_default_str();
  command->add_option("--micro-batch", options->micro_batch, "sequences per rank and micro-step")
      ->capture_default_str();
  command->add_option("--precision", options->precision, "bf16, fp16 or fp32")
      ->capture_default_str();
  command
      ->add_option("--checkpoint-every", options->checkpoint_every,
                   "recompute every Nth layer (0: no activation checkpointing)")
      ->capture_default_str();
  command->add_option("--mfu", options->mfu, "model-FLOPs utilisation for the step time")
      ->capture_default_str();
  command->add_flag("--cpu", options->cpu,
                    "ranks on CPUs (memory is host RSS; --gpu-memory is the RAM per rank)");

  return [options] {
    namespace fs = std::filesystem;
    const fs::path model = options->model;
    PlanInput input;
    input.config = fs::is_directory(model) ? io::load_config(model) : LlamaConfig::from_file(model);
    const auto kind = gpu_kinds().find(options->gpu);
    LCTRAIN_CHECK(kind != gpu_kinds().end(),
                  "--gpu {} is not one of a100-40gb, a100-80gb, "
                  "h100-80gb, h200 (or give --gpu-memory and --gpu-tflops)",
                  options->gpu);
    input.device_memory_bytes = kind->second.memory_bytes;
    input.device_peak_flops = kind->second.bf16_flops;
    if (!options->gpu_memory.empty()) {
      input.device_memory_bytes = static_cast<double>(io::parse_byte_size(options->gpu_memory));
    }
    if (options->gpu_tflops > 0.0) input.device_peak_flops = options->gpu_tflops * 1e12;
    LCTRAIN_CHECK(options->gpus > 0, "--gpus must be positive, got {}", options->gpus);
    LCTRAIN_CHECK(options->length > 0, "--length must be positive, got {}", options->length);
    LCTRAIN_CHECK(options->context_parallel > 0, "--context-parallel must be positive, got {}",
                  options->context_parallel);
    LCTRAIN_CHECK(options->micro_batch > 0, "--micro-batch must be positive, got {}",
                  options->micro_batch);
    LCTRAIN_CHECK(options->checkpoint_every >= 0, "--checkpoint-every must be 0 or more, got {}",
                  options->checkpoint_every);
    LCTRAIN_CHECK(options->mfu > 0.0 && options->mfu <= 1.0, "--mfu must be in (0, 1], got {}",
                  options->mfu);
    input.devices = options->gpus;
    input.sequence_length = options->length;
    input.context_parallel = options->context_parallel;
    input.micro_batch = options->micro_batch;
    input.precision = options->precision;
    input.checkpoint_every = options->checkpoint_every;
    input.mfu = options->mfu;
    input.cpu = options->cpu;
    std::cout << describe_plan(input, make_plan(input));
  };
}

}  // namespace lctrain::cli
