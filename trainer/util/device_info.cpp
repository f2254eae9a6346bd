#include "util/device_info.h"

#include <sys/resource.h>

#include <utility>
#include <vector>

#ifdef LCTRAIN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

namespace lctrain {

std::string device_name(const torch::Device& device) {
#ifdef LCTRAIN_WITH_CUDA
  if (device.is_cuda()) {
    cudaDeviceProp properties{};
    const int index = device.has_index() ? device.index() : 0;
    if (cudaGetDeviceProperties(&properties, index) == cudaSuccess) return properties.name;
  }
#endif
  return device.str();
}

std::optional<double> known_peak_bf16_tflops(const std::string& name) {
  // Order matters: the more specific name first ("H100 PCIe" before "H100").
  static const std::vector<std::pair<std::string, double>> kPeaks = {
      {"H100 PCIe", 756.0}, {"H100 NVL", 835.0}, {"H100", 989.4},  {"H200", 989.4},
      {"H800", 989.4},      {"GH200", 989.4},    {"B200", 2250.0}, {"A100", 312.0},
      {"A800", 312.0},      {"L40S", 362.0},     {"A10G", 70.0}};
  for (const auto& [key, tflops] : kPeaks) {
    if (name.find(key) != std::string::npos) return tflops;
  }
  return std::nullopt;
}

std::optional<PeakMemory> peak_device_memory(const torch::Device& device) {
#ifdef LCTRAIN_WITH_CUDA
  if (device.is_cuda()) {
    const auto index = static_cast<c10::DeviceIndex>(device.has_index() ? device.index() : 0);
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    // Index 0 is the aggregate over small and large pools (StatType::AGGREGATE).
    constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
    return PeakMemory{static_cast<double>(stats.allocated_bytes[0].peak) / kGiB,
                      static_cast<double>(stats.reserved_bytes[0].peak) / kGiB};
  }
#endif
  (void)device;
  return std::nullopt;
}

void reset_peak_device_memory(const torch::Device& device) {
#ifdef LCTRAIN_WITH_CUDA
  if (device.is_cuda()) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(
        static_cast<c10::DeviceIndex>(device.has_index() ? device.index() : 0));
  }
#endif
  (void)device;
}

double peak_resident_gib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB
}

}  // namespace lctrain
