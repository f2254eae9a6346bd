// save_model a tensor at a time: a Hugging Face model folder (config.json + sharded safetensors)
// written while the weights arrive, so that the writer never holds more than the tensor in hand.
// Used for final/ at the end of training and by `lctrain export`.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "io/streaming_safetensors_writer.h"
#include "model/llama_config.h"

namespace lctrain::io {

class StreamingModelWriter {
 public:
  // Creates `model_dir` and removes weight files of an earlier save (they would be read instead
  // of, or mixed with, the new ones). Tensors must then come in weight_slots(config) order.
  StreamingModelWriter(const std::filesystem::path& model_dir, LlamaConfig config,
                       torch::ScalarType dtype, uint64_t max_shard_bytes);

  // Converts to the folder's dtype and writes it.
  void write(const std::string& name, const torch::Tensor& tensor);
  // The index, then config.json (torch_dtype set): the folder is complete.
  void finish();

 private:
  std::filesystem::path model_dir_;
  LlamaConfig config_;
  torch::ScalarType dtype_;
  StreamingSafetensorsWriter weights_;
};

}  // namespace lctrain::io
