// `lctrain export --checkpoint DIR --out HF_DIR [--dtype bf16|f16|f32] [--max-shard-size 5GB]`:
// a training checkpoint as a Hugging Face model folder with the extended context window.
#include "checkpoint/checkpoint_export.h"
#include "checkpoint/checkpoint_store.h"
#include "cli/commands.h"
#include "io/hf_model_dir.h"
#include "io/sharded_safetensors.h"
#include "util/logging.h"

namespace lctrain::cli {

Action add_export_command(CLI::App& app) {
  struct Options {
    std::string checkpoint;
    std::string out;
    std::string dtype = "bf16";
    std::string max_shard_size = "5GB";
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand(
      "export", "Write a training checkpoint as a Hugging Face model folder (extended window)");
  command
      ->add_option("--checkpoint", options->checkpoint,
                   "checkpoint folder, or a run folder / checkpoints folder (newest good one)")
      ->required();
  command->add_option("--out", options->out, "Hugging Face folder to write")->required();
  command->add_option("--dtype", options->dtype, "bf16, f16 or f32")->capture_default_str();
  command->add_option("--max-shard-size", options->max_shard_size, "e.g. 5GB, 500MB")
      ->capture_default_str();

  return [options] {
    checkpoint::ExportOptions export_options;
    export_options.dtype = io::parse_dtype(options->dtype);
    export_options.max_shard_bytes = io::parse_byte_size(options->max_shard_size);
    const auto dir = checkpoint::resolve(options->checkpoint);
    const auto files = checkpoint::export_hugging_face(dir, options->out, export_options);
    const LlamaConfig config = io::load_config(options->out);
    log()->info("exported {} -> {} ({} files, {}, window {} tokens, RoPE {})", dir.string(),
                options->out, files.size(), options->dtype, config.max_position_embeddings,
                config.rope_scaling.describe());
  };
}

}  // namespace lctrain::cli
