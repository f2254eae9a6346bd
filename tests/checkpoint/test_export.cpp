// `lctrain export` and `lctrain inspect` on checkpoints: the Hugging Face folder they write is the
// model in the checkpoint (same logits), laid out as Hugging Face specifies (index, config with
// the extended window and rope_scaling, generation config, tokenizer files of the base model).
#include <gtest/gtest.h>

#include <map>

#include "io/safetensors.h"
#include "support/forward_logits.h"
#include "support/training_job.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::forward_logits;
using testing::quoted;
using testing::run_lctrain;
using testing::ScratchDir;
using testing::TrainingJob;

using testing::contains;

class Export : public ::testing::Test {
 protected:
  ScratchDir scratch_;
  TrainingJob job_{scratch_};
};

TEST_F(Export, ShardedFolderHasTheCheckpointsLogitsAndHuggingFaceLayout) {
  ASSERT_EQ(job_.run("run", 2, "training.steps=5").exit_code, 0);
  const fs::path out = scratch_ / "hf";
  const CommandResult exported =
      run_lctrain("export --checkpoint " + quoted(job_.out("run")) + " --out " + quoted(out) +
                  " --dtype f32 --max-shard-size 20KB");
  ASSERT_EQ(exported.exit_code, 0) << exported.output;

  // Past the original window of 8 tokens: the exported RoPE scaling must be in effect.
  testing::write_text(scratch_ / "ids.txt",
                      "1 5 9 13 17 21 25 29 33 37 41 45 2 6 10 14 18 22 "
                      "26 30 34 38 42 46 3 7 11");
  const auto expected = forward_logits(job_.out("run") / "final", scratch_ / "ids.txt",
                                       scratch_ / "final.safetensors");
  const auto actual = forward_logits(out, scratch_ / "ids.txt", scratch_ / "exported.safetensors");
  EXPECT_TRUE(torch::equal(expected, actual));

  const auto config = read_json_file(out / "config.json");
  EXPECT_EQ(config.at("max_position_embeddings"), 32);
  EXPECT_EQ(config.at("rope_scaling").at("rope_type"), "linear");
  EXPECT_EQ(config.at("rope_scaling").at("type"), "linear");  // what older transformers read
  EXPECT_DOUBLE_EQ(config.at("rope_scaling").at("factor").get<double>(), 4.0);
  EXPECT_EQ(config.at("torch_dtype"), "float32");
  // No base model (random init): the generation config comes from config.json, and says so.
  const auto generation = read_json_file(out / "generation_config.json");
  EXPECT_EQ(generation.at("_from_model_config"), true);
  EXPECT_EQ(generation.at("eos_token_id"), 2);

  // The index: {"metadata": {"total_size": bytes}, "weight_map": {tensor: file}}.
  const auto index = read_json_file(out / "model.safetensors.index.json");
  const auto& weight_map = index.at("weight_map");
  EXPECT_EQ(weight_map.size(), 2u * 9u + 3u);  // 9 tensors per layer, embeddings, norm, lm_head
  std::set<std::string> files;
  int64_t total = 0;
  for (const auto& [name, file] : weight_map.items()) {
    files.insert(file.get<std::string>());
    total +=
        io::tensor_bytes(io::SafetensorsFile::open(out / file.get<std::string>()).tensor(name));
  }
  EXPECT_GT(files.size(), 1u);
  EXPECT_EQ(index.at("metadata").at("total_size").get<int64_t>(), total);

  const CommandResult inspect = run_lctrain("inspect " + quoted(job_.out("run")));
  EXPECT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_TRUE(contains(inspect.output, "step:                5")) << inspect.output;
  EXPECT_TRUE(contains(inspect.output, "world size:          2")) << inspect.output;
  EXPECT_TRUE(contains(inspect.output, "ok (sizes and checksums verified)")) << inspect.output;
}

TEST_F(Export, Bf16ByDefaultWithTheBaseModelsTokenizerAndGenerationConfig) {
  // A base model in Hugging Face layout with tokenizer files and its own generation settings.
  const fs::path base = scratch_ / "base";
  fs::copy(testing::fixture_dir("tiny-llama-parity"), base);
  testing::write_text(base / "tokenizer.json", "{\"model\": \"stand-in\"}");
  testing::write_text(base / "tokenizer_config.json", "{\"add_bos_token\": true}");
  testing::write_text(base / "generation_config.json", "{\"temperature\": 0.7}");
  ASSERT_EQ(job_.run("run", 1,
                     "training.steps=2 model.path=" + quoted(base) + " context.target_length=128")
                .exit_code,
            0);
  const fs::path out = scratch_ / "hf";
  ASSERT_EQ(run_lctrain("export --checkpoint " + quoted(job_.out("run") / "checkpoints") +
                        " --out " + quoted(out))
                .exit_code,
            0);
  const auto file = io::SafetensorsFile::open(out / "model.safetensors");
  for (const auto& name : file.names()) EXPECT_EQ(file.info(name).dtype, torch::kBFloat16) << name;
  EXPECT_EQ(testing::read_text(out / "tokenizer.json"),
            testing::read_text(base / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(out / "tokenizer_config.json"));
  const auto generation = read_json_file(out / "generation_config.json");
  EXPECT_DOUBLE_EQ(generation.at("temperature").get<double>(), 0.7);
  EXPECT_EQ(generation.at("_from_model_config"), false);
  EXPECT_EQ(generation.at("eos_token_id"), 2);
  const auto config = read_json_file(out / "config.json");
  EXPECT_EQ(config.at("max_position_embeddings"), 128);
  EXPECT_EQ(config.at("torch_dtype"), "bfloat16");
}

TEST_F(Export, BadInputEndsInOneClearError) {
  const CommandResult missing = run_lctrain("export --checkpoint " + quoted(scratch_ / "nothing") +
                                            " --out " + quoted(scratch_ / "hf"));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_TRUE(contains(missing.output, "no usable checkpoint")) << missing.output;
  ASSERT_EQ(job_.run("run", 1, "training.steps=5").exit_code, 0);
  const CommandResult dtype = run_lctrain("export --checkpoint " + quoted(job_.out("run")) +
                                          " --out " + quoted(scratch_ / "hf") + " --dtype int8");
  EXPECT_NE(dtype.exit_code, 0);
  EXPECT_TRUE(contains(dtype.output, "int8")) << dtype.output;
}

// Every file under `dir` (relative path -> bytes).
std::map<std::string, std::string> folder_bytes(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      files[fs::relative(entry.path(), dir).string()] = testing::read_text(entry.path());
    }
  }
  return files;
}

TEST_F(Export, RefusedExportLeavesAnExistingModelFolderByteForByte) {
  ASSERT_EQ(job_.run("run", 1, "training.steps=5").exit_code, 0);
  const fs::path out = scratch_ / "hf";
  const std::string export_run =
      "export --checkpoint " + quoted(job_.out("run")) + " --out " + quoted(out);
  ASSERT_EQ(run_lctrain(export_run + " --max-shard-size 20KB").exit_code, 0);
  const auto before = folder_bytes(out);
  ASSERT_TRUE(before.count("model.safetensors.index.json"));

  for (const std::string& bad : {std::string(" --max-shard-size 0"), std::string(" --dtype int8"),
                                 std::string(" --max-shard-size lots")}) {
    const CommandResult refused = run_lctrain(export_run + bad);
    EXPECT_NE(refused.exit_code, 0) << bad;
    EXPECT_EQ(folder_bytes(out), before) << bad << "\n" << refused.output;
  }
  const CommandResult zero = run_lctrain(export_run + " --max-shard-size 0");
  EXPECT_TRUE(contains(zero.output, "must be positive")) << zero.output;
  const CommandResult no_checkpoint =
      run_lctrain("export --checkpoint " + quoted(scratch_ / "nothing") + " --out " + quoted(out));
  EXPECT_NE(no_checkpoint.exit_code, 0);
  EXPECT_EQ(folder_bytes(out), before);
  // No staging folder is left behind by the refused exports.
  for (const auto& entry : fs::directory_iterator(scratch_.path())) {
    EXPECT_FALSE(contains(entry.path().filename().string(), ".partial-")) << entry.path();
  }

  // A successful export replaces the folder whole: no shard of the earlier, sharded export stays.
  ASSERT_EQ(run_lctrain(export_run + " --dtype f32").exit_code, 0);
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_FALSE(fs::exists(out / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(out / "model-00001-of-00002.safetensors"));
}

TEST_F(Export, KeepsTheFoldersOtherFilesAndRefusesAFile) {
  ASSERT_EQ(job_.run("run", 1, "training.steps=5").exit_code, 0);
  const fs::path out = scratch_ / "notes";
  testing::write_text(out / "todo.txt", "keep me");
  testing::write_text(out / "docs" / "README.md", "and me");
  const std::string export_run =
      "export --checkpoint " + quoted(job_.out("run")) + " --out " + quoted(out);
  for (int round = 0; round < 2; ++round) {
    const CommandResult exported = run_lctrain(export_run);
    ASSERT_EQ(exported.exit_code, 0) << exported.output;
    EXPECT_EQ(testing::read_text(out / "todo.txt"), "keep me");
    EXPECT_EQ(testing::read_text(out / "docs" / "README.md"), "and me");
    EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  }
  testing::write_text(scratch_ / "file", "not a folder");
  const CommandResult refused = run_lctrain("export --checkpoint " + quoted(job_.out("run")) +
                                            " --out " + quoted(scratch_ / "file"));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(contains(refused.output, "is not a folder")) << refused.output;
  EXPECT_EQ(testing::read_text(scratch_ / "file"), "not a folder");
}

}  // namespace
}  // namespace lctrain
