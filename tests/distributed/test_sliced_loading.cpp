// Sliced loading (io/weight_slices.h + ShardedLlama's slice constructor): every rank of a W-rank
// job reads only its 1/W slice of each FSDP unit, and must end up with the very bits it would
// keep after loading the whole model, in every format, at W = 1, 2 and 3 (3 pads unevenly).
// The ranks are simulated in one process: building the shards needs no collective. Random
// initialisation must not depend on W. Broken folders keep their errors naming file and tensor.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "distributed/communicator.h"
#include "distributed/sharded_llama.h"
#include "io/hf_model_dir.h"
#include "io/weight_slices.h"
#include "model/llama_weights.h"
#include "support/error_expectations.h"
#include "support/test_support.h"
#include "support/torch_checkpoints.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::error_message_of;
using testing::expect_contains;
using testing::fixture_dir;
using testing::quoted;
using testing::ScratchDir;

// A rank of a W-rank job whose collectives are never called: only the layout is needed here.
class LayoutOnlyCommunicator : public Communicator {
 public:
  LayoutOnlyCommunicator(int rank, int world) : rank_(rank), world_(world) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend_name() const override { return "layout-only"; }
  void all_reduce_sum(torch::Tensor&) override { fail(); }
  PendingCollective all_gather_async(torch::Tensor&, const torch::Tensor&) override {
    fail();
    return {};
  }
  void reduce_scatter_sum(torch::Tensor&, const torch::Tensor&) override { fail(); }
  void broadcast(torch::Tensor&, int) override { fail(); }
  PendingCollective exchange_async(const torch::Tensor&, int, torch::Tensor&, int) override {
    fail();
    return {};
  }
  void barrier() override { fail(); }

 private:
  [[noreturn]] static void fail() { throw std::logic_error("no collective in a layout test"); }
  int rank_;
  int world_;
};

std::shared_ptr<Communicator> rank_of(int rank, int world) {
  return std::make_shared<LayoutOnlyCommunicator>(rank, world);
}

// Each unit's fp32 shard on this rank.
std::vector<torch::Tensor> shards_of(ShardedLlama& model) {
  std::vector<torch::Tensor> shards;
  for (auto& unit : model.units()) shards.push_back(unit->shard().detach().clone());
  return shards;
}

// For W = 1, 2, 3 and every rank: the shards read slice by slice equal, bit for bit, those kept
// from the whole model loaded by io::load_weights.
void expect_sliced_equals_whole(const fs::path& model_dir) {
  const LlamaConfig config = io::load_config(model_dir);
  const LlamaWeights whole = io::load_weights(model_dir, config, torch::kFloat32, torch::kCPU);
  for (const int world : {1, 2, 3}) {
    for (int rank = 0; rank < world; ++rank) {
      ShardedLlama from_whole(config, whole, config.rope_scaling, rank_of(rank, world), {});
      const auto slices = io::open_weight_slices(model_dir, config);
      ShardedLlama sliced(config, *slices, config.rope_scaling, rank_of(rank, world), {});
      const auto expected = shards_of(from_whole);
      const auto actual = shards_of(sliced);
      ASSERT_EQ(actual.size(), expected.size());
      for (size_t unit = 0; unit < actual.size(); ++unit) {
        EXPECT_TRUE(torch::equal(actual[unit], expected[unit]))
            << model_dir << " W=" << world << " rank " << rank << " unit "
            << sliced.units()[unit]->name();
      }
    }
  }
}

LlamaConfig untied_config() {
  nlohmann::json json =
      nlohmann::json::parse(testing::read_text(fixture_dir("tiny-llama-parity") / "config.json"));
  json["tie_word_embeddings"] = false;
  json["num_hidden_layers"] = 3;
  return LlamaConfig::from_json(json, "untied test config");
}

TEST(SlicedLoading, SafetensorsSingleFileEqualsWholeLoading) {
  expect_sliced_equals_whole(fixture_dir("tiny-llama-parity"));
}

TEST(SlicedLoading, ShardedBf16SafetensorsEqualsWholeLoading) {
  // Untied, bf16 (converted piece by piece), in several shards so tensors and units straddle files.
  ScratchDir scratch;
  const LlamaConfig config = untied_config();
  const LlamaWeights weights = init_llama_weights(config, torch::kBFloat16, 7);
  io::save_model(scratch.path(), config, weights, torch::kBFloat16, 20'000);
  ASSERT_TRUE(fs::exists(scratch / "model.safetensors.index.json"));
  expect_sliced_equals_whole(scratch.path());
}

class SlicedTorchCheckpoints : public testing::TorchCheckpointsTest {};

TEST_F(SlicedTorchCheckpoints, MetaWithTwoModelParallelShardsEqualsWholeLoading) {
  expect_sliced_equals_whole(dir("meta"));
}

TEST_F(SlicedTorchCheckpoints, ShardedBinEqualsWholeLoading) {
  expect_sliced_equals_whole(dir("bin-sharded"));
}

TEST_F(SlicedTorchCheckpoints, SingleBinWithStridedStoragesEqualsWholeLoading) {
  expect_sliced_equals_whole(dir("bin"));
}

TEST(SlicedLoading, TruncatedShardIsAnErrorNamingTheFile) {
  ScratchDir scratch;
  const LlamaConfig config = untied_config();
  io::save_model(scratch.path(), config, init_llama_weights(config, torch::kBFloat16, 7),
                 torch::kBFloat16, 20'000);
  fs::path shard;
  for (const auto& entry : fs::directory_iterator(scratch.path())) {
    if (entry.path().filename().string().rfind("model-00002-of-", 0) == 0) shard = entry.path();
  }
  ASSERT_FALSE(shard.empty());
  fs::resize_file(shard, fs::file_size(shard) - 100);
  const std::string message =
      error_message_of([&] { io::open_weight_slices(scratch.path(), config); });
  expect_contains(message, {shard.string(), "beyond the"});
}

TEST(SlicedLoading, WrongShapeIsAnErrorNamingTheTensor) {
  ScratchDir scratch;
  LlamaConfig config = untied_config();
  io::save_model(scratch.path(), config, init_llama_weights(config, torch::kBFloat16, 7),
                 torch::kBFloat16, 20'000);
  config.intermediate_size = 96;  // the folder's MLP weights are 160 wide
  const std::string message =
      error_message_of([&] { io::open_weight_slices(scratch.path(), config); });
  expect_contains(message, {"model.layers.0.mlp.gate_proj.weight", "[160, 64]", "[96, 64]"});
}

TEST(SlicedLoading, RandomInitDoesNotDependOnTheWorldSizeAndKeepsItsValues) {
  const LlamaConfig config = untied_config();
  const LlamaWeights whole = init_llama_weights(config, torch::kFloat32, 11, 0.02);
  for (const int world : {1, 4, 3}) {
    std::vector<std::vector<torch::Tensor>> per_rank;
    for (int rank = 0; rank < world; ++rank) {
      const auto slices = io::random_weight_slices(config, 11, 0.02);
      ShardedLlama model(config, *slices, config.rope_scaling, rank_of(rank, world), {});
      per_rank.push_back(shards_of(model));
    }
    // The ranks' shards put together are the whole model init_llama_weights draws.
    ShardedLlama reference(config, whole, config.rope_scaling, rank_of(0, 1), {});
    for (size_t unit = 0; unit < reference.units().size(); ++unit) {
      std::vector<torch::Tensor> parts;
      for (const auto& shards : per_rank) parts.push_back(shards[unit]);
      const torch::Tensor joined = torch::cat(parts).narrow(0, 0, reference.units()[unit]->numel());
      const torch::Tensor expected =
          reference.units()[unit]->shard().detach().narrow(0, 0, reference.units()[unit]->numel());
      EXPECT_TRUE(torch::equal(joined, expected)) << "W=" << world << " unit " << unit;
    }
  }
}

}  // namespace
}  // namespace lctrain
