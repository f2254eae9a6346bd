// A Hugging Face LLaMA model folder: config.json + safetensors weights (single file or sharded)
// + tokenizer files. Loads into a LlamaModel with every tensor checked against the config, and
// writes such a folder back out. Loading also takes the older layouts as they are: config.json +
// pytorch_model*.bin, and Meta's params.json + consolidated.NN.pth.
#pragma once

#include <filesystem>
#include <optional>

#include "model/llama_model.h"

namespace lctrain::io {

struct ModelLoadOptions {
  torch::ScalarType dtype = torch::kFloat32;  // weights are converted to this on load
  torch::Device device = torch::kCPU;
  // Runtime RoPE scaling; when unset the model runs with what config.json says it was trained with.
  std::optional<RopeScaling> rope_scaling;
};

// The weight layout of a model folder.
enum class CheckpointFormat {
  kSafetensors,  // config.json + model.safetensors or model.safetensors.index.json
  kTorchBin,     // config.json + pytorch_model.bin or pytorch_model.bin.index.json ("hf-bin")
  kMeta,         // params.json + consolidated.NN.pth ("meta")
};
// Safetensors wins when a folder holds several layouts. Throws Error when it holds none.
CheckpointFormat detect_format(const std::filesystem::path& model_dir);
std::string format_name(CheckpointFormat format);  // "safetensors", "hf-bin", "meta"

// config.json, or for a Meta folder params.json as the equivalent Hugging Face config.
LlamaConfig load_config(const std::filesystem::path& model_dir);

// Reads the weights named in `config` from the folder, in whichever format it holds. Missing,
// unexpected and mis-shaped tensors are named in the error.
LlamaWeights load_weights(const std::filesystem::path& model_dir, const LlamaConfig& config,
                          torch::ScalarType dtype, const torch::Device& device);

LlamaModel load_model(const std::filesystem::path& model_dir, const ModelLoadOptions& options);

// Parses "f32"/"float32", "bf16"/"bfloat16", "f16"/"float16".
torch::ScalarType parse_dtype(const std::string& name);
std::string dtype_name(torch::ScalarType dtype);

// Writes config.json and the weights (sharded above max_shard_bytes) in `dtype` into the folder
// `model_dir`, which should be empty (a staging folder of write_model_folder).
void write_model_files(const std::filesystem::path& model_dir, const LlamaConfig& config,
                       const LlamaWeights& weights, torch::ScalarType dtype,
                       uint64_t max_shard_bytes);

// write_model_files into a new folder that replaces `model_dir` only once complete
// (io/model_folder_swap.h): an earlier model folder there is replaced whole, never mixed with
// the new files, and stays as it was when the save fails or is refused.
void save_model(const std::filesystem::path& model_dir, const LlamaConfig& config,
                const LlamaWeights& weights, torch::ScalarType dtype, uint64_t max_shard_bytes);

}  // namespace lctrain::io
