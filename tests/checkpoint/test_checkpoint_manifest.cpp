// The checkpoint manifest: it round-trips, and every inconsistency a damaged or foreign file could
// carry is an error naming the file and the key.
#include <gtest/gtest.h>

#include "checkpoint/checkpoint_manifest.h"
#include "support/error_expectations.h"

namespace lctrain::checkpoint {
namespace {

Manifest sample() {
  Manifest manifest;
  manifest.world_size = 2;
  manifest.step = 30;
  manifest.optimizer_steps = 28;
  manifest.tokens_seen = 30 * 4 * 128;
  manifest.loss = 3.25;
  manifest.lr = 2e-5;
  manifest.loss_scale = 32768.0;
  manifest.loss_scale_growth_tracker = 17;
  manifest.sequences_seen = 120;
  manifest.data_seed = 7;
  manifest.data_path = "data/tokens.bin";
  manifest.model_config = {{"hidden_size", 8}};
  manifest.units = {{"embeddings", 40, 40, {{"model.embed_tokens.weight", {5, 8}, 0}}},
                    {"head", 9, 10, {{"model.norm.weight", {8}, 0}, {"bias", {1}, 8}}}};
  manifest.files = {{Manifest::shard_file_name(0, 2), 100, "00000000000000ab"},
                    {Manifest::shard_file_name(1, 2), 100, "00000000000000cd"}};
  manifest.config_yaml = "model: {}\n";
  return manifest;
}

TEST(CheckpointManifest, RoundTripsEveryField) {
  const Manifest original = sample();
  const Manifest read = Manifest::from_json(original.to_json(), "manifest.json");
  EXPECT_EQ(read.to_json(), original.to_json());
  EXPECT_EQ(read.units[1].parameters[1].offset, 8);
  EXPECT_EQ(read.files[1].name, "rank-00001-of-00002.safetensors");
  // torchtitan's component names, so people and tools find their way around.
  for (const char* component : {"train_state", "lr_scheduler", "dataloader", "optimizer",
                                "grad_scaler", "rng", "model", "files"}) {
    EXPECT_TRUE(original.to_json().contains(component)) << component;
  }
}

TEST(CheckpointManifest, InconsistenciesAreErrorsNamingTheKey) {
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>> cases = {
      {[](nlohmann::json& j) { j["format"] = "other"; }, "format"},
      {[](nlohmann::json& j) { j["format_version"] = 2; }, "format_version 2"},
      {[](nlohmann::json& j) { j["world_size"] = 0; }, "world_size"},
      {[](nlohmann::json& j) { j.erase("train_state"); }, "train_state"},
      {[](nlohmann::json& j) { j["train_state"]["step"] = "ten"; }, "step"},
      {[](nlohmann::json& j) { j["dataloader"]["sequences_seen"] = -1; }, "sequences_seen"},
      {[](nlohmann::json& j) { j["grad_scaler"]["scale"] = 0; }, "grad_scaler"},
      {[](nlohmann::json& j) { j["optimizer"]["steps"] = 31; }, "optimizer.steps 31"},
      {[](nlohmann::json& j) { j["files"].erase(1); }, "files listed"},
      {[](nlohmann::json& j) { j["files"][1]["name"] = "../escape.safetensors"; }, "should be"},
      {[](nlohmann::json& j) { j["model"]["units"][1]["padded_numel"] = 9; }, "padded_numel"},
      {[](nlohmann::json& j) { j["model"]["units"][1]["parameters"][1]["offset"] = 7; },
       "starts at 7"},
      {[](nlohmann::json& j) { j["model"]["units"][0]["numel"] = 39; }, "numel is 39"},
      {[](nlohmann::json& j) { j["model"]["units"] = nlohmann::json::array(); }, "empty"},
      {[](nlohmann::json& j) {
         j["model"]["units"][0]["parameters"][0]["shape"] = {5, -8};
       },
       "shape"},
  };
  for (const auto& [mutate, expected] : cases) {
    nlohmann::json json = sample().to_json();
    mutate(json);
    const std::string message =
        testing::error_message_of([&] { Manifest::from_json(json, "ckpt/manifest.json"); });
    testing::expect_contains(message, {"ckpt/manifest.json", expected});
  }
}

}  // namespace
}  // namespace lctrain::checkpoint
