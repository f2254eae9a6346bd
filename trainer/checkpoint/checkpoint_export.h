// Turns a sharded training checkpoint into a Hugging Face model folder that transformers, vLLM and
// llama.cpp load as they are: sharded safetensors + index, config.json with the extended window
// (max_position_embeddings = L', rope_scaling linear L'/L with both "rope_type" and "type"),
// generation_config.json, and the base model's tokenizer files. One process, CPU only.
#pragma once

#include <torch/torch.h>

#include <filesystem>

#include "checkpoint/checkpoint_manifest.h"
#include "model/llama_config.h"
#include "model/llama_weights.h"

namespace lctrain::checkpoint {

// The full model of a checkpoint folder, fp32 on the CPU, and its (extended) config.
std::pair<LlamaConfig, LlamaWeights> read_model(const std::filesystem::path& checkpoint_dir,
                                                const Manifest& manifest);

// What goes beside the weights of a model folder: generation_config.json (the base model's,
// else from config) and the base model's tokenizer files ("" = random init: none).
void write_companion_files(const std::filesystem::path& out, const LlamaConfig& config,
                           const std::filesystem::path& base_model);

struct ExportOptions {
  torch::ScalarType dtype = torch::kBFloat16;
  uint64_t max_shard_bytes = uint64_t{5} * 1000 * 1000 * 1000;
};

// Writes the model folder `out` in a new sibling folder swapped in once complete
// (io/model_folder_swap.h): an existing model folder there is replaced whole, and stays byte for
// byte as it was when the export is refused or fails. Returns the files it wrote.
std::vector<std::string> export_hugging_face(const std::filesystem::path& checkpoint_dir,
                                             const std::filesystem::path& out,
                                             const ExportOptions& options);

}  // namespace lctrain::checkpoint
