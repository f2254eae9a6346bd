#include "model/cpu_gemm.h"

#include "util/error.h"
#include "util/process_setting.h"

namespace lctrain {
namespace {

bool cpu_has_native_low_precision_gemm() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
#else
  return true;  // no x86 feature test; trust the native kernel
#endif
}

// y = x w^T (+ b) in fp32 from low-precision operands. Saves the operands as they are (not their
// fp32 copies) and upcasts them again in backward.
class Fp32Linear : public torch::autograd::Function<Fp32Linear> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* context, const torch::Tensor& x,
                               const torch::Tensor& weight, torch::TensorList bias) {
    context->save_for_backward({x, weight});
    context->saved_data["bias_dtype"] =
        bias.empty() ? int64_t{-1} : static_cast<int64_t>(bias[0].scalar_type());
    const torch::Tensor bias32 = bias.empty() ? torch::Tensor() : bias[0].to(torch::kFloat32);
    return at::linear(x.to(torch::kFloat32), weight.to(torch::kFloat32), bias32)
        .to(x.scalar_type());
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* context,
                                               torch::autograd::tensor_list gradients) {
    const auto saved = context->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor gradient = gradients[0].to(torch::kFloat32);
    const torch::Tensor rows = gradient.reshape({-1, gradient.size(-1)});
    torch::Tensor grad_x;
    torch::Tensor grad_weight;
    torch::Tensor grad_bias;
    if (context->needs_input_grad(0)) {
      grad_x = at::matmul(gradient, weight.to(torch::kFloat32)).to(x.scalar_type());
    }
    if (context->needs_input_grad(1)) {
      grad_weight =
          rows.t().mm(x.reshape({-1, x.size(-1)}).to(torch::kFloat32)).to(weight.scalar_type());
    }
    const int64_t bias_dtype = context->saved_data["bias_dtype"].toInt();
    if (bias_dtype < 0) return {grad_x, grad_weight};
    if (context->needs_input_grad(2)) {
      grad_bias = rows.sum(0).to(static_cast<torch::ScalarType>(bias_dtype));
    }
    return {grad_x, grad_weight, grad_bias};
  }
};

}  // namespace

CpuGemm parse_cpu_gemm(const std::string& text, const std::string& source) {
  if (text == "native") return CpuGemm::kNative;
  if (text == "fp32") return CpuGemm::kFp32;
  if (text == "auto" || text.empty()) {
    return cpu_has_native_low_precision_gemm() ? CpuGemm::kNative : CpuGemm::kFp32;
  }
  throw Error("{}: '{}' is not a CPU GEMM choice (use auto, native or fp32)", source, text);
}

namespace {

ProcessSetting<CpuGemm>& cpu_gemm_setting() {
  static ProcessSetting<CpuGemm> setting("LCTRAIN_CPU_GEMM", parse_cpu_gemm);
  return setting;
}

}  // namespace

CpuGemm cpu_gemm() { return cpu_gemm_setting().get(); }

void set_cpu_gemm(CpuGemm choice) { cpu_gemm_setting().set(choice); }

bool gemm_in_fp32(const torch::Tensor& operand) {
  const auto dtype = operand.scalar_type();
  return operand.device().is_cpu() && (dtype == torch::kBFloat16 || dtype == torch::kFloat16) &&
         cpu_gemm() == CpuGemm::kFp32;
}

torch::Tensor linear_layer(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias) {
  if (gemm_in_fp32(x) && weight.scalar_type() == x.scalar_type()) {
    // The bias goes as a list (empty or one tensor): an undefined tensor is not a valid input.
    const std::vector<torch::Tensor> biases =
        bias.defined() ? std::vector<torch::Tensor>{bias} : std::vector<torch::Tensor>{};
    return Fp32Linear::apply(x, weight, torch::TensorList(biases));
  }
  return at::linear(x, weight, bias);
}

torch::Tensor matrix_product(const torch::Tensor& a, const torch::Tensor& b) {
  if (gemm_in_fp32(a)) return a.to(torch::kFloat32).mm(b.to(torch::kFloat32)).to(a.scalar_type());
  return a.mm(b);
}

void add_matrix_product(torch::Tensor& sum, const torch::Tensor& a, const torch::Tensor& b) {
  if (gemm_in_fp32(a) || a.scalar_type() == torch::kFloat32) {
    sum.addmm_(a.to(torch::kFloat32), b.to(torch::kFloat32));
  } else {
    sum.add_(a.mm(b));
  }
}

}  // namespace lctrain
