#include "cli/model_options.h"

#include "util/error.h"

namespace lctrain::cli {
namespace {

torch::Device parse_device(const std::string& name) {
  try {
    const torch::Device device(name);
    LCTRAIN_CHECK(!device.is_cuda() || torch::cuda::is_available(),
                  "--device {}: this LibTorch build or machine has no CUDA", name);
    return device;
  } catch (const c10::Error&) {
    throw Error("--device '{}' is not a device (use cpu, cuda or cuda:N)", name);
  }
}

}  // namespace

void ModelOptions::add_to(CLI::App& command) {
  command
      .add_option("--model", model_dir, "Hugging Face model folder (config.json, *.safetensors)")
      ->required();
  command.add_option("--dtype", dtype, "compute dtype: f32, bf16 or f16")->capture_default_str();
  command.add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
  command.add_option(
      "--rope-scaling", rope_scaling_json,
      "override config.json's rope_scaling with this JSON, as Hugging Face writes it "
      "(e.g. '{\"rope_type\":\"linear\",\"factor\":4}'); 'null' for none");
}

io::ModelLoadOptions ModelOptions::to_load_options() const {
  io::ModelLoadOptions options;
  options.dtype = with_context("--dtype", [&] { return io::parse_dtype(dtype); });
  options.device = parse_device(device);
  if (!rope_scaling_json.empty()) {
    options.rope_scaling = RopeScaling::from_json_text(rope_scaling_json, "--rope-scaling");
  }
  return options;
}

}  // namespace lctrain::cli
