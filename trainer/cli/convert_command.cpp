// `lctrain convert --from meta|hf-bin IN_DIR --out HF_DIR [--dtype bf16]`: a Meta checkpoint
// (params.json + consolidated.NN.pth) or an older Hugging Face one (pytorch_model*.bin) rewritten
// in our Hugging Face layout: config.json + safetensors + the tokenizer files.
#include <filesystem>

#include "cli/commands.h"
#include "io/hf_model_dir.h"
#include "io/model_folder_swap.h"
#include "io/sharded_safetensors.h"
#include "io/streaming_model_writer.h"
#include "io/weight_slices.h"
#include "model/llama_weights.h"
#include "util/error.h"
#include "util/logging.h"

namespace lctrain::cli {
namespace {

namespace fs = std::filesystem;

// Tokenizer and generation files travel unchanged. Meta's downloads keep tokenizer.model beside
// the model folders rather than in them, so for it the parent folder is looked at too.
void copy_tokenizer_files(const fs::path& in, const fs::path& out, io::CheckpointFormat format) {
  for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                           "special_tokens_map.json", "generation_config.json"}) {
    fs::path source = in / name;
    if (!fs::exists(source) && format == io::CheckpointFormat::kMeta &&
        std::string(name) == "tokenizer.model") {
      source = fs::absolute(in).parent_path() / name;
    }
    if (!fs::exists(source)) continue;
    fs::copy_file(source, out / name, fs::copy_options::overwrite_existing);
  }
  if (!fs::exists(out / "tokenizer.model")) {
    log()->warn("{} has no tokenizer.model; `generate` will need --tokenizer", in.string());
  }
}

}  // namespace

Action add_convert_command(CLI::App& app) {
  struct Options {
    std::string from;
    std::string in;
    std::string out;
    std::string dtype = "bf16";
    std::string max_shard_size = "5GB";
    int64_t max_position_embeddings = 0;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand(
      "convert", "Rewrite a Meta (.pth) or older Hugging Face (.bin) checkpoint as safetensors");
  command->add_option("--from", options->from, "meta or hf-bin: the layout IN_DIR holds")
      ->required()
      ->check(CLI::IsMember({"meta", "hf-bin"}));
  command->add_option("in_dir", options->in, "checkpoint folder to read")->required();
  command->add_option("--out", options->out, "Hugging Face folder to write")->required();
  command->add_option("--dtype", options->dtype, "bf16, f16 or f32")->capture_default_str();
  command->add_option("--max-shard-size", options->max_shard_size, "e.g. 5GB, 500MB")
      ->capture_default_str();
  command->add_option("--max-position-embeddings", options->max_position_embeddings,
                      "the trained window to record (Meta's params.json does not say; by default "
                      "it is inferred per LLaMA version)");

  return [options] {
    const torch::ScalarType dtype = io::parse_dtype(options->dtype);
    const uint64_t max_shard_bytes = io::parse_byte_size(options->max_shard_size);
    const fs::path in = options->in;
    const fs::path out = options->out;
    const io::CheckpointFormat format = io::detect_format(in);
    LCTRAIN_CHECK(io::format_name(format) == options->from,
                  "{} holds a {} checkpoint, not --from {}", in.string(), io::format_name(format),
                  options->from);
    LCTRAIN_CHECK(!fs::exists(out) || !fs::equivalent(in, out),
                  "--out must be another folder than the input {}", in.string());
    LlamaConfig config = io::load_config(in);
    if (options->max_position_embeddings > 0) {
      config.max_position_embeddings = options->max_position_embeddings;
    }
    // Streamed, a tensor at a time: every tensor is checked before the output is touched, and
    // memory holds one tensor, never the model.
    const auto weights = io::open_weight_slices(in, config);
    // Written beside `out` and swapped in whole: a failed convert leaves `out` as it was.
    io::write_model_folder(out, [&](const fs::path& staging) {
      io::StreamingModelWriter writer(staging, config, dtype, max_shard_bytes);
      LlamaWeights unused;
      for (const WeightSlot& slot : weight_slots(config, unused)) {
        const torch::Tensor tensor = torch::empty(slot.shape, torch::dtype(dtype));
        torch::Tensor flat = tensor.view({-1});
        weights->read(slot.name, 0, flat);
        writer.write(slot.name, tensor);
      }
      writer.finish();
      copy_tokenizer_files(in, staging, format);
    });
    log()->info("converted {} ({}) -> {} ({}, {} parameters, window {} tokens)", in.string(),
                options->from, out.string(), options->dtype, config.num_parameters(),
                config.max_position_embeddings);
  };
}

}  // namespace lctrain::cli
