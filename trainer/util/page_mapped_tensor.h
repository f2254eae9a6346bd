// Large short-lived CPU buffers taken straight from the kernel (anonymous mmap) and given back
// when the tensor dies, bypassing the heap. What they are for: an FSDP unit gathered in the
// compute dtype, its full gradient, the copies around the reduction. Served from glibc's heap (the
// heap policy keeps freed memory there, for the activations' sake), these tens to hundreds of MiB
// fragment it: measured on bench/sliced_loading_memory.sh's 374M model at W = 4, peak RSS 2.51
// GiB through the heap against 2.08 GiB with every allocation above 1 MiB mapped. Small buffers,
// and every buffer on a GPU, come from LibTorch's allocator as usual.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace lctrain {

// An uninitialised tensor of `numel` elements (1-D).
torch::Tensor empty_page_mapped(int64_t numel, const torch::TensorOptions& options);
// The same, zero-filled (fresh anonymous pages are zero: no pass over the memory).
torch::Tensor zeros_page_mapped(int64_t numel, const torch::TensorOptions& options);
// A contiguous copy of `source` in `dtype`, flattened.
torch::Tensor copy_page_mapped(const torch::Tensor& source, torch::ScalarType dtype);

}  // namespace lctrain
