// What the trainer reports about the device it computes on: its name, its peak dense bf16
// throughput (the MFU denominator) and the peak memory this process used on it. The CUDA queries
// are compiled only into CUDA builds; everything else sees CPU answers.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

namespace lctrain {

std::string device_name(const torch::Device& device);

// Dense (not 2:4 sparse) bf16 tensor-core TFLOP/s from the vendor's data sheet for the GPUs we
// know by name; nullopt for anything else (CPUs included: give training.peak_tflops instead).
std::optional<double> known_peak_bf16_tflops(const std::string& device_name);

struct PeakMemory {
  double allocated_gib = 0.0;  // tensors alive at the worst moment
  double reserved_gib = 0.0;   // what the caching allocator held from the driver (nvidia-smi)
};
// Peak GPU memory of this process since it started (or the last reset); nullopt on CPU.
std::optional<PeakMemory> peak_device_memory(const torch::Device& device);
void reset_peak_device_memory(const torch::Device& device);

// Peak resident set size of this process, for CPU runs.
double peak_resident_gib();

}  // namespace lctrain
