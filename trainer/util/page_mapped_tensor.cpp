#include "util/page_mapped_tensor.h"

#include <sys/mman.h>

namespace lctrain {
namespace {

// Below this, the heap serves the buffer without lasting harm.
constexpr int64_t kMinimumBytes = int64_t{1} << 20;

// A mapped tensor, or an undefined one when LibTorch's allocator should serve the buffer.
torch::Tensor try_map(int64_t numel, const torch::TensorOptions& options) {
  const int64_t bytes = numel * static_cast<int64_t>(options.dtype().itemsize());
  if (!options.device().is_cpu() || bytes < kMinimumBytes) return torch::Tensor();
  void* memory = ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return torch::Tensor();  // LibTorch's allocator reports the failure
  const auto size = static_cast<size_t>(bytes);
  return torch::from_blob(
      memory, {numel}, [size](void* data) { ::munmap(data, size); }, options.requires_grad(false));
}

}  // namespace

torch::Tensor empty_page_mapped(int64_t numel, const torch::TensorOptions& options) {
  torch::Tensor mapped = try_map(numel, options);
  return mapped.defined() ? mapped : torch::empty({numel}, options.requires_grad(false));
}

torch::Tensor zeros_page_mapped(int64_t numel, const torch::TensorOptions& options) {
  torch::Tensor mapped = try_map(numel, options);
  return mapped.defined() ? mapped : torch::zeros({numel}, options.requires_grad(false));
}

torch::Tensor copy_page_mapped(const torch::Tensor& source, torch::ScalarType dtype) {
  torch::Tensor copy = empty_page_mapped(source.numel(), source.options().dtype(dtype));
  copy.copy_(source.reshape({-1}));
  return copy;
}

}  // namespace lctrain
