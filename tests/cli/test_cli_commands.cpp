// The lctrain command line run as a user runs it: help, inspect, generate on a freshly built model
// folder, forward on a sharded checkpoint, and one-line errors (exit code 1) for bad input.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "io/hf_model_dir.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "model/llama_config.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "support/test_support.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

using testing::fixture_dir;
using testing::read_text;
using testing::run_command;
using testing::ScratchDir;
using testing::write_text;

using testing::quoted;

const auto lctrain = testing::run_lctrain;

struct SplitResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `lctrain <args>` with stdout and stderr apart (stderr goes through a file in `scratch`).
SplitResult lctrain_split(const std::string& args, const std::filesystem::path& scratch) {
  const auto err_file = scratch / "stderr.txt";
  const auto result = run_command("{ " + quoted(testing::lctrain_binary()) + " " + args + " 2>" +
                                  quoted(err_file) + "; }");
  return {result.exit_code, result.output, read_text(err_file)};
}

using testing::contains;

std::vector<std::string> non_empty_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  std::string line;
  while (std::getline(stream, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Help and inspect.

TEST(CliHelp, ListsTheSubcommands) {
  const auto result = lctrain("--help");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* name : {"forward", "generate", "inspect"}) {
    EXPECT_TRUE(contains(result.output, name)) << name << " missing from:\n" << result.output;
  }
}

TEST(CliHelp, NoOrUnknownSubcommandFails) {
  for (const char* args : {"", "frobnicate"}) {
    const auto result = lctrain(args);
    EXPECT_NE(result.exit_code, 0) << "'" << args << "': " << result.output;
    EXPECT_LT(result.exit_code, 128) << "killed by a signal: " << result.output;
  }
}

TEST(CliInspect, DescribesTheParityFixture) {
  const auto result = lctrain("inspect " + quoted(fixture_dir("tiny-llama-parity")));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const std::string& out = result.output;
  EXPECT_TRUE(contains(out, "2 layers")) << out;
  EXPECT_TRUE(contains(out, "4 query")) << out;
  EXPECT_TRUE(contains(out, "2 key/value")) << out;
  EXPECT_TRUE(contains(out, "257")) << out;
  EXPECT_TRUE(contains(out, "tied")) << out;
  EXPECT_TRUE(contains(out, "BFloat16")) << out;
  bool window_found = false;
  for (const std::string& line : non_empty_lines(out)) {
    if (contains(line, "window")) {
      window_found = true;
      EXPECT_TRUE(contains(line, "32")) << line;
    }
  }
  EXPECT_TRUE(window_found) << out;
}

// ---------------------------------------------------------------------------------------------
// generate on a model folder built here: a SentencePiece tokenizer trained with spm_train and a
// random LLaMA of the tokenizer's vocabulary size.

constexpr const char* kPrompt = "The grass is green";

class CliGenerate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = std::make_unique<ScratchDir>();
    model_dir_ = scratch_->path() / "model";
    std::filesystem::create_directories(model_dir_);
    testing::train_test_tokenizer(model_dir_, 300);
    const int64_t vocab = io::Tokenizer::from_model_dir(model_dir_).vocab_size();
    const LlamaConfig config = LlamaConfig::from_json({{"vocab_size", vocab},
                                                       {"hidden_size", 64},
                                                       {"intermediate_size", 128},
                                                       {"num_hidden_layers", 2},
                                                       {"num_attention_heads", 4},
                                                       {"num_key_value_heads", 2},
                                                       {"max_position_embeddings", 64},
                                                       {"tie_word_embeddings", false}},
                                                      "generate test config");
    // A large init_std makes the logits decisive, so greedy choices are not near-ties.
    LlamaWeights weights = init_llama_weights(config, torch::kFloat32, /*seed=*/11, 0.5);
    // Zero logits for unk/BOS/EOS, far below the best of the others: every step then adds
    // visible text and generation runs to the end.
    weights.lm_head.index_fill_(0, torch::tensor({0, 1, 2}, torch::kInt64), 0.0);
    io::save_model(model_dir_, config, weights, torch::kFloat32, uint64_t{1} << 40);
  }
  static void TearDownTestSuite() { scratch_.reset(); }

  SplitResult generate(const std::string& extra_args) const {
    return lctrain_split("generate --model " + quoted(model_dir_) + " --prompt " +
                             quoted(std::string(kPrompt)) + " " + extra_args,
                         scratch_->path());
  }

  static std::unique_ptr<ScratchDir> scratch_;
  static std::filesystem::path model_dir_;
};

std::unique_ptr<ScratchDir> CliGenerate::scratch_;
std::filesystem::path CliGenerate::model_dir_;

TEST_F(CliGenerate, CachedAndUncachedGenerationAgree) {
  const auto cached = generate("--max-new-tokens 12");
  ASSERT_EQ(cached.exit_code, 0) << cached.out << cached.err;
  const auto uncached = generate("--max-new-tokens 12 --no-cache");
  ASSERT_EQ(uncached.exit_code, 0) << uncached.out << uncached.err;

  std::cout << "[generate] " << cached.out << std::flush;
  EXPECT_EQ(cached.out, uncached.out);
  EXPECT_EQ(cached.out.rfind(kPrompt, 0), 0u) << cached.out;
  // Twelve new subword tokens add well over a few characters of continuation.
  EXPECT_GT(cached.out.size(), std::string(kPrompt).size() + 12) << cached.out;
  EXPECT_EQ(non_empty_lines(cached.out).size(), 1u) << cached.out;
}

TEST_F(CliGenerate, MaxNewTokensBoundsTheContinuation) {
  const auto none = generate("--max-new-tokens 0");
  ASSERT_EQ(none.exit_code, 0) << none.out << none.err;
  EXPECT_EQ(none.out, std::string(kPrompt) + "\n");

  const auto short_run = generate("--max-new-tokens 3");
  const auto long_run = generate("--max-new-tokens 12");
  ASSERT_EQ(short_run.exit_code, 0) << short_run.err;
  ASSERT_EQ(long_run.exit_code, 0) << long_run.err;
  const std::string short_text = short_run.out.substr(0, short_run.out.size() - 1);  // drop "\n"
  EXPECT_GT(short_text.size(), std::string(kPrompt).size());
  EXPECT_LT(short_text.size(), long_run.out.size());
  // Greedy decoding is deterministic: the longer run extends the shorter one.
  EXPECT_EQ(long_run.out.rfind(short_text, 0), 0u) << short_text << " vs " << long_run.out;
}

TEST_F(CliGenerate, RunsWithLinearRopeScaling) {
  const std::string scaling = "--rope-scaling '{\"rope_type\":\"linear\",\"factor\":4}'";
  const auto cached = generate("--max-new-tokens 12 " + scaling);
  ASSERT_EQ(cached.exit_code, 0) << cached.out << cached.err;
  EXPECT_EQ(cached.out.rfind(kPrompt, 0), 0u) << cached.out;
  EXPECT_GT(cached.out.size(), std::string(kPrompt).size() + 1) << cached.out;
  // The cache agrees with full recomputation under scaled positions too.
  const auto uncached = generate("--max-new-tokens 12 --no-cache " + scaling);
  ASSERT_EQ(uncached.exit_code, 0) << uncached.err;
  EXPECT_EQ(cached.out, uncached.out);
  // The override reaches the model: this (deterministic) model continues differently with it.
  const auto plain = generate("--max-new-tokens 12");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(cached.out, plain.out);
}

TEST_F(CliGenerate, RunsInBfloat16) {
  const auto result = generate("--max-new-tokens 12 --dtype bf16");
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_EQ(result.out.rfind(kPrompt, 0), 0u) << result.out;
  EXPECT_GT(result.out.size(), std::string(kPrompt).size() + 1) << result.out;
}

TEST_F(CliGenerate, ModelFolderWithoutTokenizerFails) {
  const auto result = lctrain("generate --model " + quoted(fixture_dir("tiny-llama-parity")) +
                              " --prompt hello --max-new-tokens 2");
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_TRUE(contains(result.output, "tokenizer.model")) << result.output;
}

// ---------------------------------------------------------------------------------------------
// forward on a sharded checkpoint (untied lm_head, attention biases) against the same model saved
// as one file, and against the in-process forward pass.

TEST(CliForward, ShardedCheckpointGivesTheSameLogitsAsASingleFile) {
  ScratchDir scratch;
  const LlamaConfig config = LlamaConfig::from_json({{"vocab_size", 97},
                                                     {"hidden_size", 64},
                                                     {"intermediate_size", 96},
                                                     {"num_hidden_layers", 2},
                                                     {"num_attention_heads", 4},
                                                     {"num_key_value_heads", 2},
                                                     {"max_position_embeddings", 64},
                                                     {"tie_word_embeddings", false},
                                                     {"attention_bias", true}},
                                                    "sharded test config");
  LlamaWeights weights = init_llama_weights(config, torch::kFloat32, /*seed=*/5, 0.1);
  // init_llama_weights zeroes biases; random ones make a loader that drops them visible.
  torch::manual_seed(17);
  for (DecoderLayerWeights& layer : weights.layers) {
    for (torch::Tensor* bias : {&layer.attention.q_bias, &layer.attention.k_bias,
                                &layer.attention.v_bias, &layer.attention.o_bias}) {
      *bias = torch::randn(bias->sizes()) * 0.5;
    }
  }
  const auto single_dir = scratch / "single";
  const auto sharded_dir = scratch / "sharded";
  io::save_model(single_dir, config, weights, torch::kFloat32, uint64_t{1} << 40);
  io::save_model(sharded_dir, config, weights, torch::kFloat32, 16 * 1024);

  ASSERT_TRUE(std::filesystem::exists(single_dir / "model.safetensors"));
  ASSERT_FALSE(std::filesystem::exists(single_dir / "model.safetensors.index.json"));
  ASSERT_TRUE(std::filesystem::exists(sharded_dir / "model.safetensors.index.json"));
  ASSERT_FALSE(std::filesystem::exists(sharded_dir / "model.safetensors"));
  int shards = 0;
  for (const auto& entry : std::filesystem::directory_iterator(sharded_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("model-", 0) == 0 && contains(name, ".safetensors")) ++shards;
  }
  ASSERT_GE(shards, 3);

  const std::vector<int64_t> ids = {1, 5, 17, 42, 96, 3, 64, 8, 0, 77, 5, 5};
  std::string ids_text;
  for (const int64_t id : ids) ids_text += std::to_string(id) + " ";
  write_text(scratch / "ids.txt", ids_text + "\n");

  const auto forward = [&](const std::filesystem::path& model_dir, const std::string& out_name) {
    const auto out = scratch / out_name;
    const auto result = lctrain("forward --model " + quoted(model_dir) + " --ids " +
                                quoted(scratch / "ids.txt") + " --out " + quoted(out));
    EXPECT_EQ(result.exit_code, 0) << result.output;
    return io::SafetensorsFile::open(out).tensor("logits");
  };
  const torch::Tensor single = forward(single_dir, "single.safetensors");
  const torch::Tensor sharded = forward(sharded_dir, "sharded.safetensors");
  ASSERT_EQ(single.sizes(), torch::IntArrayRef({static_cast<int64_t>(ids.size()), 97}));
  ASSERT_EQ(sharded.sizes(), single.sizes());
  EXPECT_TRUE(torch::isfinite(single).all().item<bool>());
  EXPECT_LT((sharded - single).abs().max().item<double>(), 1e-5);

  // Both equal the model computed in this process from the weights that were saved...
  torch::NoGradGuard no_grad;
  const auto input = torch::tensor(ids, torch::kInt64).unsqueeze(0);
  LlamaModel model(config, weights, config.rope_scaling);
  const torch::Tensor expected = model.forward(input).squeeze(0);
  EXPECT_LT((sharded - expected).abs().max().item<double>(), 1e-4);
  // ...and the biases (which were saved to the shards) do change them.
  LlamaWeights unbiased = weights;
  for (DecoderLayerWeights& layer : unbiased.layers) {
    for (torch::Tensor* bias : {&layer.attention.q_bias, &layer.attention.k_bias,
                                &layer.attention.v_bias, &layer.attention.o_bias}) {
      *bias = torch::zeros_like(*bias);
    }
  }
  LlamaModel unbiased_model(config, unbiased, config.rope_scaling);
  EXPECT_GT((unbiased_model.forward(input).squeeze(0) - expected).abs().max().item<double>(), 1e-2);
}

// ---------------------------------------------------------------------------------------------
// Bad input: each must end with exit code 1 (not a signal) and one "lctrain: error:" line naming
// the culprit.

class CliBadInput : public ::testing::Test {
 protected:
  // A writable copy of the parity fixture's config.json and model.safetensors.
  std::filesystem::path copy_fixture() const {
    const auto fixture = fixture_dir("tiny-llama-parity");
    const auto dir = scratch_ / "model";
    std::filesystem::create_directories(dir);
    for (const char* name : {"config.json", "model.safetensors"}) {
      std::filesystem::copy_file(fixture / name, dir / name);
    }
    return dir;
  }

  static void edit_config(const std::filesystem::path& dir,
                          const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json json = read_json_file(dir / "config.json");
    edit(json);
    write_text(dir / "config.json", json.dump(1));
  }

  // `lctrain forward` on `model_dir` with the fixture's ids unless `ids` is given.
  std::string forward_args(const std::filesystem::path& model_dir,
                           const std::filesystem::path& ids = {}) const {
    const auto ids_file = ids.empty() ? fixture_dir("tiny-llama-parity") / "ids.txt" : ids;
    return "forward --model " + quoted(model_dir) + " --ids " + quoted(ids_file) + " --out " +
           quoted(scratch_ / "logits.safetensors");
  }

  static void expect_clean_failure(const std::string& args,
                                   const std::vector<std::string>& needles) {
    const auto result = lctrain(args);
    EXPECT_EQ(result.exit_code, 1) << args << "\n" << result.output;
    EXPECT_FALSE(contains(result.output, "Segmentation")) << result.output;
    EXPECT_FALSE(contains(result.output, "terminate called")) << result.output;
    const auto lines = non_empty_lines(result.output);
    ASSERT_EQ(lines.size(), 1u) << "expected a one-line message:\n" << result.output;
    EXPECT_EQ(lines[0].rfind("lctrain: error: ", 0), 0u) << lines[0];
    for (const std::string& needle : needles) {
      EXPECT_TRUE(contains(lines[0], needle)) << "'" << needle << "' not in: " << lines[0];
    }
  }

  ScratchDir scratch_;
};

TEST_F(CliBadInput, MissingModelFolder) {
  const auto missing = scratch_ / "no-such-model";
  expect_clean_failure(forward_args(missing), {missing.string()});
  expect_clean_failure("inspect " + quoted(missing), {missing.string()});
}

TEST_F(CliBadInput, InspectGivenAFileSaysWhatItExpected) {
  const auto file = fixture_dir("tiny-llama-parity") / "config.json";
  expect_clean_failure("inspect " + quoted(file), {file.string(), "is a file", "folder"});
}

TEST_F(CliBadInput, ConfigIsNotJson) {
  const auto dir = copy_fixture();
  write_text(dir / "config.json", "{\"hidden_size\": 64, \"vocab_size\": ");
  expect_clean_failure(forward_args(dir), {"config.json"});
}

TEST_F(CliBadInput, ConfigHiddenSizeIsNotANumber) {
  const auto dir = copy_fixture();
  edit_config(dir, [](nlohmann::json& json) { json["hidden_size"] = "abc"; });
  expect_clean_failure(forward_args(dir), {"config.json", "hidden_size"});
}

TEST_F(CliBadInput, ConfigHeadsNotAMultipleOfKeyValueHeads) {
  const auto dir = copy_fixture();
  edit_config(dir, [](nlohmann::json& json) { json["num_key_value_heads"] = 3; });
  expect_clean_failure(forward_args(dir), {"num_attention_heads", "num_key_value_heads"});
}

TEST_F(CliBadInput, CheckpointMissesATensor) {
  const auto dir = copy_fixture();
  edit_config(dir, [](nlohmann::json& json) { json["num_hidden_layers"] = 3; });
  expect_clean_failure(forward_args(dir), {"missing", "model.layers.2."});
}

TEST_F(CliBadInput, CheckpointTensorHasTheWrongShape) {
  const auto dir = copy_fixture();
  edit_config(dir, [](nlohmann::json& json) { json["intermediate_size"] = 128; });
  expect_clean_failure(forward_args(dir),
                       {"model.layers.0.mlp.gate_proj.weight", "[160, 64]", "[128, 64]"});
}

TEST_F(CliBadInput, CheckpointHoldsAnUnexpectedTensor) {
  const auto dir = copy_fixture();
  const auto file =
      io::SafetensorsFile::open(fixture_dir("tiny-llama-parity") / "model.safetensors");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const std::string& name : file.names()) tensors.emplace_back(name, file.tensor(name));
  tensors.emplace_back("model.layers.0.self_attn.extra_proj.weight", torch::zeros({4, 4}));
  io::write_safetensors(dir / "model.safetensors", tensors);
  expect_clean_failure(forward_args(dir), {"model.layers.0.self_attn.extra_proj.weight"});
}

TEST_F(CliBadInput, TruncatedSafetensors) {
  const auto dir = copy_fixture();
  const auto file = dir / "model.safetensors";
  std::filesystem::resize_file(file, std::filesystem::file_size(file) / 2);
  expect_clean_failure(forward_args(dir), {"model.safetensors"});
  expect_clean_failure("inspect " + quoted(dir), {"model.safetensors"});
}

TEST_F(CliBadInput, IdsFileWithAWord) {
  const auto ids = scratch_ / "ids.txt";
  write_text(ids, "12 abc\n");
  expect_clean_failure(forward_args(fixture_dir("tiny-llama-parity"), ids), {ids.string(), "abc"});
}

TEST_F(CliBadInput, IdsFileMissingOrEmpty) {
  const auto missing = scratch_ / "no-ids.txt";
  expect_clean_failure(forward_args(fixture_dir("tiny-llama-parity"), missing), {missing.string()});
  const auto empty = scratch_ / "empty-ids.txt";
  write_text(empty, " \n");
  expect_clean_failure(forward_args(fixture_dir("tiny-llama-parity"), empty), {empty.string()});
}

TEST_F(CliBadInput, IdsOutsideTheVocabulary) {
  const auto ids = scratch_ / "ids.txt";
  write_text(ids, "1 5 999999\n");
  expect_clean_failure(forward_args(fixture_dir("tiny-llama-parity"), ids),
                       {"vocabulary", "999999"});
}

TEST_F(CliBadInput, UnknownRopeScalingType) {
  expect_clean_failure(forward_args(fixture_dir("tiny-llama-parity")) +
                           " --rope-scaling '{\"rope_type\":\"bogus\"}'",
                       {"--rope-scaling", "bogus"});
}

TEST_F(CliBadInput, RopeScalingIsNotJson) {
  expect_clean_failure(forward_args(fixture_dir("tiny-llama-parity")) + " --rope-scaling '{linear'",
                       {"--rope-scaling"});
}

TEST_F(CliBadInput, UnknownDtype) {
  expect_clean_failure(forward_args(fixture_dir("tiny-llama-parity")) + " --dtype f8", {"f8"});
}

// LCTRAIN_ATTENTION and LCTRAIN_CPU_GEMM (read when first needed; the CPU GEMM choice only for
// bf16/fp16 work) with a value they do not know.
TEST_F(CliBadInput, UnknownEnvironmentChoices) {
  const std::string args = forward_args(fixture_dir("tiny-llama-parity")) + " --dtype bf16";
  for (const char* variable : {"LCTRAIN_ATTENTION", "LCTRAIN_CPU_GEMM"}) {
    ::setenv(variable, "fastest", 1);
    expect_clean_failure(args, {variable, "'fastest'"});
    ::unsetenv(variable);
  }
}

}  // namespace
}  // namespace lctrain
