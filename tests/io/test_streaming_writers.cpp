// The streaming writers (io/streaming_safetensors_writer.h, io/streaming_model_writer.h) write a
// tensor at a time what write_sharded_safetensors and save_model write from the whole model:
// the same files, byte for byte. Tensors out of plan order are refused, and an unfinished writer
// leaves no half-written shard.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "io/hf_model_dir.h"
#include "io/sharded_safetensors.h"
#include "io/streaming_model_writer.h"
#include "io/streaming_safetensors_writer.h"
#include "model/llama_weights.h"
#include "support/error_expectations.h"
#include "support/test_support.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::error_message_of;
using testing::expect_contains;
using testing::files_in;
using testing::read_text;
using testing::ScratchDir;

void expect_same_folders(const fs::path& actual, const fs::path& expected) {
  ASSERT_EQ(files_in(actual), files_in(expected));
  for (const std::string& name : files_in(expected)) {
    EXPECT_EQ(read_text(actual / name), read_text(expected / name)) << name;
  }
}

std::vector<std::pair<std::string, torch::Tensor>> sample_tensors() {
  torch::manual_seed(3);
  return {{"a", torch::randn({40, 8})},    {"b", torch::randn({7}).to(torch::kBFloat16)},
          {"big", torch::randn({300})},    {"c", torch::randn({3, 5})},
          {"empty", torch::zeros({0, 4})}, {"d", torch::randn({30}).to(torch::kFloat16)}};
}

std::vector<io::detail::HeaderEntry> plan_of(
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::vector<io::detail::HeaderEntry> plan;
  for (const auto& [name, tensor] : tensors) {
    plan.push_back({name, tensor.scalar_type(), tensor.sizes().vec()});
  }
  return plan;
}

TEST(StreamingSafetensorsWriter, WritesTheFilesOfTheWholeModelWriterByteForByte) {
  const auto tensors = sample_tensors();
  for (const uint64_t max_shard_bytes : {uint64_t{1} << 30, uint64_t{1000}, uint64_t{1}}) {
    ScratchDir scratch;
    io::write_sharded_safetensors(scratch / "whole", tensors, max_shard_bytes);
    io::StreamingSafetensorsWriter writer(scratch / "streamed", plan_of(tensors), max_shard_bytes);
    for (const auto& [name, tensor] : tensors) writer.write(name, tensor);
    writer.finish();
    expect_same_folders(scratch / "streamed", scratch / "whole");
  }
}

TEST(StreamingSafetensorsWriter, RefusesATensorOutOfPlanAndLeavesNoPartialShard) {
  const auto tensors = sample_tensors();
  ScratchDir scratch;
  {
    io::StreamingSafetensorsWriter writer(scratch / "out", plan_of(tensors), 1000);
    writer.write("a", tensors[0].second);
    expect_contains(error_message_of([&] { writer.write("c", tensors[3].second); }),
                    {"tensor 'c'", "'b'", "was planned"});
    expect_contains(error_message_of([&] { writer.finish(); }), {"after 1 of 6", "'b'"});
  }
  // "a" filled the first shard (committed); the shard "b" would start was never begun; no
  // index names shards that are not there.
  EXPECT_EQ(files_in(scratch / "out"), std::set<std::string>{"model-00001-of-00004.safetensors"});
}

TEST(StreamingModelWriter, WritesWhatSaveModelWrites) {
  nlohmann::json json =
      nlohmann::json::parse(read_text(testing::fixture_dir("tiny-llama-parity") / "config.json"));
  json["tie_word_embeddings"] = false;
  const LlamaConfig config = LlamaConfig::from_json(json, "test config");
  const LlamaWeights weights = init_llama_weights(config, torch::kFloat32, 5);
  ScratchDir scratch;
  io::save_model(scratch / "whole", config, weights, torch::kBFloat16, 30'000);
  // A stale shard of an earlier, bigger save must go, as save_model removes it.
  io::save_model(scratch / "streamed", config, weights, torch::kFloat32, 10'000);
  io::StreamingModelWriter writer(scratch / "streamed", config, torch::kBFloat16, 30'000);
  for (const auto& [name, tensor] : named_weights(config, weights)) writer.write(name, tensor);
  writer.finish();
  expect_same_folders(scratch / "streamed", scratch / "whole");
}

}  // namespace
}  // namespace lctrain
