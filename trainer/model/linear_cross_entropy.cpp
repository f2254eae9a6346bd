#include "model/linear_cross_entropy.h"

#include <algorithm>

#include "model/cpu_gemm.h"
#include "util/error.h"

namespace lctrain {
namespace {

constexpr int64_t kChunkLogitElements = int64_t{1} << 26;  // 256 MiB of fp32 logits

// Saved: hidden, weight, targets, and the number of counted targets (a tensor, so that nothing
// waits for the device).
class LinearCrossEntropy : public torch::autograd::Function<LinearCrossEntropy> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* context,
                               const torch::Tensor& hidden, const torch::Tensor& weight,
                               const torch::Tensor& targets, int64_t chunk_tokens) {
    const int64_t tokens = hidden.size(0);
    torch::Tensor total = torch::zeros({}, hidden.options().dtype(torch::kFloat32));
    for (int64_t start = 0; start < tokens; start += chunk_tokens) {
      const int64_t rows = std::min(chunk_tokens, tokens - start);
      const torch::Tensor logits =
          linear_layer(hidden.narrow(0, start, rows), weight).to(torch::kFloat32);
      total += torch::nn::functional::cross_entropy(logits, targets.narrow(0, start, rows),
                                                    torch::nn::functional::CrossEntropyFuncOptions()
                                                        .reduction(torch::kSum)
                                                        .ignore_index(kIgnoreIndex));
    }
    const torch::Tensor counted = (targets != kIgnoreIndex).sum().to(torch::kFloat32);
    context->save_for_backward({hidden, weight, targets, counted});
    context->saved_data["chunk_tokens"] = chunk_tokens;
    return total / counted;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* context,
                                               torch::autograd::tensor_list gradients) {
    const auto saved = context->get_saved_variables();
    const torch::Tensor& hidden = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& targets = saved[2];
    const int64_t chunk_tokens = context->saved_data["chunk_tokens"].toInt();
    // d(mean)/d(logit) = (softmax - one_hot(target)) / counted, for counted rows only.
    const torch::Tensor scale = gradients[0].to(torch::kFloat32) / saved[3];
    const bool want_hidden = context->needs_input_grad(0);
    const bool want_weight = context->needs_input_grad(1);
    torch::Tensor grad_hidden = want_hidden ? torch::empty_like(hidden) : torch::Tensor();
    torch::Tensor grad_weight32 =
        want_weight ? torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32))
                    : torch::Tensor();
    const int64_t tokens = hidden.size(0);
    for (int64_t start = 0; start < tokens; start += chunk_tokens) {
      const int64_t rows = std::min(chunk_tokens, tokens - start);
      const torch::Tensor chunk = hidden.narrow(0, start, rows);
      const torch::Tensor chunk_targets = targets.narrow(0, start, rows);
      torch::Tensor logit_gradient =
          torch::softmax(linear_layer(chunk, weight).to(torch::kFloat32), -1);
      const torch::Tensor counted = (chunk_targets != kIgnoreIndex).unsqueeze(1);
      logit_gradient.scatter_add_(1, chunk_targets.clamp_min(0).unsqueeze(1),
                                  -torch::ones({rows, 1}, logit_gradient.options()));
      logit_gradient.mul_(counted.to(torch::kFloat32) * scale);
      // As autograd would: the fp32 logits' gradient goes back through the cast to hidden's dtype.
      const torch::Tensor low = logit_gradient.to(hidden.scalar_type());
      if (want_hidden) grad_hidden.narrow(0, start, rows).copy_(matrix_product(low, weight));
      if (want_weight) add_matrix_product(grad_weight32, low.t(), chunk);
    }
    return {grad_hidden, want_weight ? grad_weight32.to(weight.scalar_type()) : torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor linear_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight,
                                   const torch::Tensor& targets, int64_t chunk_tokens) {
  LCTRAIN_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
                "linear_cross_entropy: hidden [tokens, d] and weight [vocab, d] expected, got "
                "[{}] and [{}]",
                fmt::join(hidden.sizes(), ", "), fmt::join(weight.sizes(), ", "));
  LCTRAIN_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0),
                "linear_cross_entropy: {} targets for {} tokens", targets.numel(), hidden.size(0));
  LCTRAIN_CHECK(chunk_tokens >= 0, "linear_cross_entropy: chunk_tokens must be >= 0");
  if (chunk_tokens == 0) {
    chunk_tokens = std::max<int64_t>(1, kChunkLogitElements / std::max<int64_t>(1, weight.size(0)));
  }
  return LinearCrossEntropy::apply(hidden, weight, targets, chunk_tokens);
}

}  // namespace lctrain
