// CPU GEMM choice: bf16 / fp16 products computed in fp32 equal fp32 arithmetic on the same
// operands (forward and every gradient), the native choice is LibTorch's own kernel, fp32 tensors
// are never touched, and bad LCTRAIN_CPU_GEMM values are named. (A bf16 model under both choices:
// LlamaModel.Bfloat16TracksFloat32.)
#include <gtest/gtest.h>

#include "model/cpu_gemm.h"
#include "util/error.h"

namespace lctrain {
namespace {

// Restores the process-wide choice when a test ends.
class CpuGemmChoice {
 public:
  explicit CpuGemmChoice(CpuGemm choice) : saved_(cpu_gemm()) { set_cpu_gemm(choice); }
  ~CpuGemmChoice() { set_cpu_gemm(saved_); }

 private:
  CpuGemm saved_;
};

struct Operands {
  torch::Tensor x, weight, bias;
};

Operands random_operands(torch::ScalarType dtype, bool with_bias) {
  torch::manual_seed(3);
  Operands operands;
  operands.x = torch::randn({2, 5, 24}).to(dtype).requires_grad_(true);
  operands.weight = torch::randn({16, 24}).to(dtype).requires_grad_(true);
  if (with_bias) operands.bias = torch::randn({16}).to(dtype).requires_grad_(true);
  return operands;
}

float max_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().max().item<float>();
}

TEST(CpuGemm, ParsesChoicesAndNamesBadValues) {
  EXPECT_EQ(parse_cpu_gemm("native", "X"), CpuGemm::kNative);
  EXPECT_EQ(parse_cpu_gemm("fp32", "X"), CpuGemm::kFp32);
  EXPECT_EQ(parse_cpu_gemm("auto", "X"), parse_cpu_gemm("", "X"));
  try {
    parse_cpu_gemm("fast", "LCTRAIN_CPU_GEMM");
    FAIL() << "a bad choice was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("LCTRAIN_CPU_GEMM"), std::string::npos);
    EXPECT_NE(std::string(error.what()).find("'fast'"), std::string::npos);
  }
}

TEST(CpuGemm, Fp32LinearEqualsFp32ArithmeticOnTheSameOperands) {
  const CpuGemmChoice choice(CpuGemm::kFp32);
  for (const auto dtype : {torch::kBFloat16, torch::kFloat16}) {
    for (const bool with_bias : {false, true}) {
      SCOPED_TRACE(fmt::format("{} bias {}", c10::toString(dtype), with_bias));
      const Operands ours = random_operands(dtype, with_bias);
      const Operands reference = random_operands(dtype, with_bias);
      const torch::Tensor out = linear_layer(ours.x, ours.weight, ours.bias);
      const torch::Tensor expected =
          at::linear(reference.x.to(torch::kFloat32), reference.weight.to(torch::kFloat32),
                     with_bias ? reference.bias.to(torch::kFloat32) : torch::Tensor())
              .to(dtype);
      ASSERT_EQ(out.scalar_type(), dtype);
      EXPECT_TRUE(torch::equal(out, expected)) << max_difference(out, expected);

      const torch::Tensor upstream = torch::randn(out.sizes()).to(dtype);
      out.backward(upstream);
      expected.backward(upstream);
      for (const auto& [name, mine, theirs] : {std::tuple{"x", ours.x, reference.x},
                                               std::tuple{"weight", ours.weight, reference.weight},
                                               std::tuple{"bias", ours.bias, reference.bias}}) {
        if (!theirs.defined()) continue;
        SCOPED_TRACE(name);
        ASSERT_TRUE(mine.grad().defined());
        EXPECT_EQ(mine.grad().scalar_type(), dtype);
        // The same fp32 products, rounded once: equal to the bit.
        EXPECT_TRUE(torch::equal(mine.grad(), theirs.grad()))
            << max_difference(mine.grad(), theirs.grad());
      }
    }
  }
}

TEST(CpuGemm, GradientsOnlyWhereAsked) {
  const CpuGemmChoice choice(CpuGemm::kFp32);
  const auto x = torch::randn({3, 8}).to(torch::kBFloat16);  // no gradient wanted
  const auto weight = torch::randn({4, 8}).to(torch::kBFloat16).requires_grad_(true);
  linear_layer(x, weight).sum().backward();
  ASSERT_TRUE(weight.grad().defined());
  const auto expected = torch::ones({3, 4}).t().mm(x.to(torch::kFloat32));
  EXPECT_TRUE(torch::allclose(weight.grad().to(torch::kFloat32), expected, 1e-2, 1e-2));
}

TEST(CpuGemm, NativeChoiceAndFp32TensorsUseLibTorchsKernel) {
  const Operands operands = random_operands(torch::kBFloat16, true);
  {
    const CpuGemmChoice choice(CpuGemm::kNative);
    EXPECT_FALSE(gemm_in_fp32(operands.x));
    EXPECT_TRUE(torch::equal(linear_layer(operands.x, operands.weight, operands.bias),
                             at::linear(operands.x, operands.weight, operands.bias)));
  }
  const CpuGemmChoice choice(CpuGemm::kFp32);
  EXPECT_TRUE(gemm_in_fp32(operands.x));
  const auto x = torch::randn({4, 24});
  const auto weight = torch::randn({16, 24});
  EXPECT_FALSE(gemm_in_fp32(x));
  EXPECT_TRUE(torch::equal(linear_layer(x, weight), at::linear(x, weight)));
}

}  // namespace
}  // namespace lctrain
