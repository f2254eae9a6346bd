// save_sharded_model (the streamed final/ write) writes, a unit at a time, the very folder
// io::save_model writes from the gathered whole model: same files, same bytes, in fp32 and bf16.
// With W > 1 the FsdpEquivalence tests compare final/ folders written this way across W.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "distributed/communicator.h"
#include "distributed/sharded_llama.h"
#include "distributed/sharded_model_writer.h"
#include "io/hf_model_dir.h"
#include "model/llama_weights.h"
#include "support/test_support.h"
#include "util/error.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::files_in;
using testing::read_text;
using testing::ScratchDir;

TEST(SaveShardedModel, WritesWhatSaveModelWritesFromTheGatheredModel) {
  nlohmann::json json =
      nlohmann::json::parse(read_text(testing::fixture_dir("tiny-llama-parity") / "config.json"));
  for (const bool tied : {true, false}) {
    json["tie_word_embeddings"] = tied;
    const LlamaConfig config = LlamaConfig::from_json(json, "test config");
    ShardedLlama model(config, init_llama_weights(config, torch::kFloat32, 9), config.rope_scaling,
                       Communicator::single_process(), {});
    for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      ScratchDir scratch;
      io::save_model(scratch / "whole", config, model.gather_weights(torch::kFloat32), dtype,
                     25'000);
      save_sharded_model(model, scratch / "streamed", config, dtype, 25'000);
      ASSERT_EQ(files_in(scratch / "streamed"), files_in(scratch / "whole"));
      EXPECT_GT(files_in(scratch / "whole").size(), 3u);  // several shards and the index
      for (const std::string& name : files_in(scratch / "whole")) {
        EXPECT_EQ(read_text(scratch / "streamed" / name), read_text(scratch / "whole" / name))
            << name << " tied=" << tied << " " << c10::toString(dtype);
      }
    }
  }
}

TEST(SaveShardedModel, AFailedWriteLeavesTheEarlierFolderAsItWas) {
  const nlohmann::json json =
      nlohmann::json::parse(read_text(testing::fixture_dir("tiny-llama-parity") / "config.json"));
  const LlamaConfig config = LlamaConfig::from_json(json, "test config");
  ShardedLlama model(config, init_llama_weights(config, torch::kFloat32, 9), config.rope_scaling,
                     Communicator::single_process(), {});
  ScratchDir scratch;
  const fs::path out = scratch / "final";
  save_sharded_model(model, out, config, torch::kBFloat16, 25'000, [](const fs::path& folder) {
    testing::write_text(folder / "extra.txt", "1");
  });
  EXPECT_EQ(read_text(out / "extra.txt"), "1");  // the extras are in the folder swapped in
  std::map<std::string, std::string> before;
  for (const std::string& name : files_in(out)) before[name] = read_text(out / name);

  // Another model whose write fails after every weight is written: nothing of it may show.
  ShardedLlama other(config, init_llama_weights(config, torch::kFloat32, 10), config.rope_scaling,
                     Communicator::single_process(), {});
  EXPECT_THROW(save_sharded_model(other, out, config, torch::kFloat32, 25'000,
                                  [](const fs::path&) { throw Error("disk full (simulated)"); }),
               Error);
  ASSERT_EQ(files_in(out).size(), before.size());
  for (const auto& [name, bytes] : before) EXPECT_EQ(read_text(out / name), bytes) << name;
  EXPECT_EQ(files_in(scratch.path()), std::set<std::string>{"final"});  // no staging left
}

}  // namespace
}  // namespace lctrain
