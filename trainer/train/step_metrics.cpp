#include "train/step_metrics.h"

#include <fmt/format.h>

#include "util/device_info.h"

namespace lctrain {

StepMetrics::StepMetrics(const LlamaConfig& model, int64_t sequence_length, int64_t tokens_per_step,
                         int world_size, int64_t total_steps, torch::Device device,
                         std::optional<double> peak_tflops)
    // PaLM's accounting (appendix B): 6 FLOPs per parameter per token for the matmuls of forward
    // and backward, plus 12 L d T for attention scores and values. Recomputation is not counted.
    : flops_per_token_(6.0 * static_cast<double>(model.num_parameters()) +
                       12.0 * static_cast<double>(model.num_hidden_layers * model.hidden_size) *
                           static_cast<double>(sequence_length)),
      tokens_per_step_(tokens_per_step),
      world_size_(world_size),
      total_steps_(total_steps),
      device_(device),
      peak_tflops_(peak_tflops) {}

double StepMetrics::tokens_per_second(const StepResult& result) const {
  return static_cast<double>(tokens_per_step_) / result.seconds;
}

double StepMetrics::eta_seconds(const StepResult& result) const {
  const double per_step = result.elapsed_seconds / static_cast<double>(result.steps_this_run);
  return per_step * static_cast<double>(total_steps_ - result.step);
}

nlohmann::json StepMetrics::record(const StepResult& result) const {
  const double tflops_per_rank =
      flops_per_token_ * tokens_per_second(result) / 1e12 / static_cast<double>(world_size_);
  nlohmann::json record = {{"step", result.step},
                           {"loss", result.loss},
                           {"lr", result.lr},
                           {"grad_norm", result.grad_norm},
                           {"tokens_per_second", tokens_per_second(result)},
                           {"tflops_per_rank", tflops_per_rank},
                           {"peak_rss_gib", peak_resident_gib()},
                           {"elapsed_seconds", result.elapsed_seconds}};
  if (peak_tflops_) record["mfu"] = tflops_per_rank / *peak_tflops_;
  if (const auto memory = peak_device_memory(device_)) {
    record["peak_gpu_allocated_gib"] = memory->allocated_gib;
    record["peak_gpu_reserved_gib"] = memory->reserved_gib;
  }
  return record;
}

std::string StepMetrics::describe(const StepResult& result) const {
  const nlohmann::json values = record(result);
  const bool gpu = values.contains("peak_gpu_reserved_gib");
  return fmt::format(
      "step {}/{} loss {:.4f} lr {:.3g} grad_norm {:.3f} tokens/s {:.0f} TFLOP/s/rank {:.3f}{} "
      "peak {} {:.2f} GiB ETA {:.0f} s",
      result.step, total_steps_, result.loss, result.lr, result.grad_norm,
      tokens_per_second(result), values["tflops_per_rank"].get<double>(),
      values.contains("mfu") ? fmt::format(" MFU {:.1f}%", 100.0 * values["mfu"].get<double>())
                             : "",
      gpu ? "GPU memory" : "RSS",
      gpu ? values["peak_gpu_reserved_gib"].get<double>() : values["peak_rss_gib"].get<double>(),
      eta_seconds(result));
}

}  // namespace lctrain
