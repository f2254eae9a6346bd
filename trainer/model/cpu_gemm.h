// Matrix products of the model, with one CPU special case. Without AVX-512, LibTorch's bf16 and
// fp16 GEMM on CPU is a generic loop: ~4 GFLOP/s on this project's 2-core AVX2 machine, against
// ~70 for fp32 OpenBLAS on the same shapes. There a low-precision product is computed in fp32
// from the same low-precision operands and rounded back to their dtype. The native kernel also
// accumulates in fp32, so the result is the same up to summation order; only the speed differs.
// The operands are saved for backward in their own dtype, so memory does not grow.
#pragma once

#include <torch/torch.h>

#include <string>

namespace lctrain {

enum class CpuGemm {
  kNative,  // LibTorch's own kernel for the operands' dtype
  kFp32,    // bf16 / fp16 operands multiplied in fp32, result rounded back
};

// "native", "fp32" or "auto" (native where the CPU has AVX-512 BW, VL and DQ, the instructions
// LibTorch's oneDNN bf16 GEMM needs; fp32 elsewhere). `source` names where the text came from.
CpuGemm parse_cpu_gemm(const std::string& text, const std::string& source);

// The process-wide choice: from LCTRAIN_CPU_GEMM on first use (default auto), or as last set.
CpuGemm cpu_gemm();
void set_cpu_gemm(CpuGemm choice);

// Whether products with this operand are computed in fp32 by the rule above: a bf16 or fp16
// tensor on CPU under CpuGemm::kFp32.
bool gemm_in_fp32(const torch::Tensor& operand);

// x [..., in] times weight [out, in] transposed, plus bias [out] when defined: torch's linear,
// computed in fp32 where gemm_in_fp32(x).
torch::Tensor linear_layer(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias = torch::Tensor());

// a [m, k] times b [k, n] in a's dtype, computed in fp32 where gemm_in_fp32(a). No autograd.
torch::Tensor matrix_product(const torch::Tensor& a, const torch::Tensor& b);
// sum [m, n] (fp32) += a · b. Where the product runs in fp32 it is added unrounded; elsewhere it
// is rounded to a's dtype first (LibTorch has no low-precision GEMM with an fp32 result).
void add_matrix_product(torch::Tensor& sum, const torch::Tensor& a, const torch::Tensor& b);

}  // namespace lctrain
