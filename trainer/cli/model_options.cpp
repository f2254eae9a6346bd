#include "cli/model_options.h"

#include "checkpoint/checkpoint_export.h"
#include "checkpoint/checkpoint_manifest.h"
#include "checkpoint/checkpoint_store.h"
#include "util/error.h"
#include "util/logging.h"

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
  auto* model = command.add_option("--model", model_dir,
                                   "Hugging Face model folder (config.json, *.safetensors)");
  auto* checkpoint = command.add_option(
      "--checkpoint", checkpoint_dir,
      "a training checkpoint instead of --model: its folder, or a run folder (newest good one)");
  model->excludes(checkpoint);
  command.add_option("--tokenizer", tokenizer_file,
                     "tokenizer.model to use instead of the one found with the model");
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

LlamaModel ModelOptions::load() const {
  LCTRAIN_CHECK(!model_dir.empty() || !checkpoint_dir.empty(),
                "a model is required: --model HF_DIR or --checkpoint DIR");
  const io::ModelLoadOptions options = to_load_options();
  if (!model_dir.empty()) return io::load_model(model_dir, options);
  const auto dir = checkpoint::resolve(checkpoint_dir);
  const checkpoint::Manifest manifest = checkpoint::Manifest::read(dir);
  auto [config, weights] = checkpoint::read_model(dir, manifest);
  for (WeightSlot& slot : weight_slots(config, weights)) {
    *slot.tensor = slot.tensor->to(options.device, options.dtype);
  }
  if (config.tie_word_embeddings) weights.lm_head = weights.embed_tokens;
  RopeScaling runtime = options.rope_scaling.value_or(config.rope_scaling);
  log()->debug("loaded checkpoint {} (step {}), RoPE {}", dir.string(), manifest.step,
               runtime.describe());
  return LlamaModel(std::move(config), std::move(weights), std::move(runtime));
}

ModelOptions::ConfigSource ModelOptions::load_config() const {
  LCTRAIN_CHECK(!model_dir.empty() || !checkpoint_dir.empty(),
                "a model is required: --model HF_DIR or --checkpoint DIR");
  if (!model_dir.empty()) {
    const std::filesystem::path dir = model_dir;
    const auto file =
        std::filesystem::exists(dir / "config.json") ? dir / "config.json" : dir / "params.json";
    return {io::load_config(dir), file.string()};
  }
  const auto dir = checkpoint::resolve(checkpoint_dir);
  const checkpoint::Manifest manifest = checkpoint::Manifest::read(dir);
  const std::string file = (dir / "manifest.json").string();
  return {LlamaConfig::from_json(manifest.model_config, file + " model.config"), file};
}

std::filesystem::path ModelOptions::tokenizer_path() const {
  if (!tokenizer_file.empty()) return tokenizer_file;
  LCTRAIN_CHECK(!model_dir.empty() || !checkpoint_dir.empty(),
                "a model is required: --model HF_DIR or --checkpoint DIR");
  if (!model_dir.empty()) return std::filesystem::path(model_dir) / "tokenizer.model";
  const auto dir = checkpoint::resolve(checkpoint_dir);
  const checkpoint::Manifest manifest = checkpoint::Manifest::read(dir);
  LCTRAIN_CHECK(!manifest.base_model.empty(),
                "{}: the run started from random weights, so no tokenizer comes with it; pass "
                "--tokenizer tokenizer.model",
                dir.string());
  return std::filesystem::path(manifest.base_model) / "tokenizer.model";
}

io::Tokenizer ModelOptions::load_tokenizer() const {
  const std::filesystem::path path = tokenizer_path();
  io::Tokenizer tokenizer = tokenizer_file.empty()
                                ? io::Tokenizer::from_model_dir(path.parent_path())
                                : io::Tokenizer::load(path);
  // A piece id at or past vocab_size indexes outside the embedding table: garbage or a late
  // failure depending on the text. Fewer pieces than vocab_size is common (padded tables).
  const ConfigSource config = load_config();
  LCTRAIN_CHECK(tokenizer.vocab_size() <= config.config.vocab_size,
                "tokenizer {} has {} pieces but the model ({}) has vocab_size {}: they do not "
                "belong together (pass the model's own --tokenizer)",
                path.string(), tokenizer.vocab_size(), config.file, config.config.vocab_size);
  return tokenizer;
}

std::string ModelOptions::source() const { return model_dir.empty() ? checkpoint_dir : model_dir; }

}  // namespace lctrain::cli
