#include "cli/model_options.h"

namespace lctrain::cli {

void ModelOptions::add_to(CLI::App& command) {
  command.add_option("--model", model_dir, "Hugging Face model folder (config.json, *.safetensors)")
      ->required();
  command.add_option("--dtype", dtype, "compute dtype: f32, bf16 or f16")->capture_default_str();
  command.add_option("--rope-scaling", rope_scaling_json,
                     "override config.json's rope_scaling with this JSON, as Hugging Face writes it "
                     "(e.g. '{\"rope_type\":\"linear\",\"factor\":4}'); 'null' for none");
}

io::ModelLoadOptions ModelOptions::to_load_options() const {
  io::ModelLoadOptions options;
  options.dtype = io::parse_dtype(dtype);
  if (!rope_scaling_json.empty()) {
    options.rope_scaling = RopeScaling::from_json_text(rope_scaling_json, "--rope-scaling");
  }
  return options;
}

}  // namespace lctrain::cli
