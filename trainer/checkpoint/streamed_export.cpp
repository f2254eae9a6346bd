#include "checkpoint/streamed_export.h"

#include <map>
#include <string>
#include <vector>

#include "checkpoint/checkpoint_store.h"
#include "io/streaming_model_writer.h"
#include "model/llama_weights.h"
#include "util/error.h"

namespace lctrain::checkpoint {

LlamaConfig write_model_streamed(const std::filesystem::path& checkpoint_dir,
                                 const Manifest& manifest, const std::filesystem::path& out,
                                 torch::ScalarType dtype, uint64_t max_shard_bytes) {
  LlamaConfig config = LlamaConfig::from_json(
      manifest.model_config, (checkpoint_dir / "manifest.json").string() + " model.config");
  // The manifest's layout is checked against the config before the output folder is touched.
  LlamaWeights unused;
  std::map<std::string, std::vector<int64_t>> expected;
  for (const WeightSlot& slot : weight_slots(config, unused)) expected[slot.name] = slot.shape;
  for (const UnitLayout& unit : manifest.units) {
    for (const ParameterLayout& parameter : unit.parameters) {
      const auto found = expected.find(parameter.name);
      LCTRAIN_CHECK(found != expected.end(), "{}: tensor {} is not part of a {}-layer LLaMA",
                    checkpoint_dir.string(), parameter.name, config.num_hidden_layers);
      LCTRAIN_CHECK(found->second == parameter.shape,
                    "{}: tensor {} has a shape other than its config's", checkpoint_dir.string(),
                    parameter.name);
      expected.erase(found);
    }
  }
  LCTRAIN_CHECK(expected.empty(), "{}: the checkpoint lacks {}", checkpoint_dir.string(),
                expected.empty() ? "" : expected.begin()->first);

  io::StreamingModelWriter writer(out, config, dtype, max_shard_bytes);
  for (size_t index = 0; index < manifest.units.size(); ++index) {
    const torch::Tensor flat = read_full_unit(checkpoint_dir, manifest, index);
    for (const ParameterLayout& parameter : manifest.units[index].parameters) {
      int64_t count = 1;
      for (const int64_t size : parameter.shape) count *= size;
      writer.write(parameter.name, flat.narrow(0, parameter.offset, count).view(parameter.shape));
    }
  }
  writer.finish();
  return config;
}

}  // namespace lctrain::checkpoint
