// `lctrain eval ppl` and `lctrain eval passkey` as a user runs them: text or token shards in,
// table and JSON out, a training checkpoint evaluated like its exported model, bad options named.
#include <gtest/gtest.h>

#include <cmath>

#include "support/test_support.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::quoted;
using testing::run_lctrain;

class EvalCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    // The parity fixture with a tokenizer beside it (vocabulary 200 < the model's 257).
    model_ = scratch_ / "model";
    fs::create_directories(model_);
    for (const char* file : {"config.json", "model.safetensors"}) {
      fs::copy_file(testing::fixture_dir("tiny-llama-parity") / file, model_ / file);
    }
    testing::train_test_tokenizer(model_, 200);
    std::string jsonl;
    for (int i = 0; i < 6; ++i) {
      std::string text;
      for (int j = 0; j <= i; ++j) text += "the grass is green and the sky is blue. ";
      jsonl += nlohmann::json{{"text", text}, {"meta", {{"pile_set_name", "Web"}}}}.dump() + "\n";
    }
    testing::write_text(scratch_ / "docs.jsonl", jsonl);
  }

  testing::ScratchDir scratch_;
  fs::path model_;
};

TEST_F(EvalCommand, PerplexityOfTextPrintsATableAndWritesEveryTokenOnceToJson) {
  const auto result = run_lctrain(
      "eval ppl --model " + quoted(model_) + " --data " + quoted(scratch_ / "docs.jsonl") +
      " --context 16,32 --stride 4 --max-docs 5 --json " + quoted(scratch_ / "ppl.json"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "all documents")) << result.output;
  EXPECT_TRUE(contains(result.output, "docs.jsonl#5 (Web)")) << result.output;
  const auto report = read_json_file(scratch_ / "ppl.json");
  ASSERT_EQ(report.at("per_document").size(), 5u);
  int64_t expected_tokens = 0;
  for (const auto& document : report.at("per_document")) {
    expected_tokens += document.at("tokens").get<int64_t>() - 1;
  }
  ASSERT_EQ(report.at("windows").size(), 2u);
  for (const auto& window : report.at("windows")) {
    EXPECT_EQ(window.at("tokens").get<int64_t>(), expected_tokens);
    const double perplexity = window.at("perplexity").get<double>();
    EXPECT_TRUE(std::isfinite(perplexity) && perplexity > 1.0) << perplexity;
    EXPECT_NEAR(std::log(perplexity), window.at("nll_sum").get<double>() / expected_tokens, 1e-9);
  }
  // --min-tokens drops short documents and --max-tokens truncates long ones.
  const auto trimmed = run_lctrain("eval ppl --model " + quoted(model_) + " --data " +
                                   quoted(scratch_ / "docs.jsonl") +
                                   " --context 16 --stride 4 --min-tokens 40 --max-tokens 40 "
                                   "--json " +
                                   quoted(scratch_ / "trimmed.json"));
  ASSERT_EQ(trimmed.exit_code, 0) << trimmed.output;
  const auto documents = read_json_file(scratch_ / "trimmed.json").at("per_document");
  ASSERT_FALSE(documents.empty());
  EXPECT_LT(documents.size(), 6u);
  for (const auto& document : documents) EXPECT_EQ(document.at("tokens").get<int64_t>(), 40);
}

TEST_F(EvalCommand, ACheckpointScoresLikeItsModelAndShardsLikeTheirText) {
  ASSERT_EQ(
      run_lctrain("prepare-data --input " + quoted(scratch_ / "docs.jsonl") + " --tokenizer " +
                  quoted(model_ / "tokenizer.model") + " --out " + quoted(scratch_ / "shards"))
          .exit_code,
      0);
  const auto train = run_lctrain(
      "train --config " + quoted(testing::source_dir() / "configs/demo-tiny.yaml") +
      " model.path=" + quoted(model_) + " data.path=" + quoted(scratch_ / "shards") +
      " context.target_length=64 training.steps=2 output.checkpoint_every=0 output.dir=" +
      quoted(scratch_ / "run"));
  ASSERT_EQ(train.exit_code, 0) << train.output;
  const auto eval = [&](const std::string& source, const std::string& data,
                        const std::string& name) {
    const auto result = run_lctrain("eval ppl " + source + " --data " + quoted(data) +
                                    " --context 48 --stride 8 --json " + quoted(scratch_ / name));
    EXPECT_EQ(result.exit_code, 0) << result.output;
    return read_json_file(scratch_ / name).at("windows")[0];
  };
  const auto from_checkpoint = eval("--checkpoint " + quoted(scratch_ / "run"),
                                    (scratch_ / "docs.jsonl").string(), "c.json");
  const auto from_final = eval("--model " + quoted(scratch_ / "run" / "final"),
                               (scratch_ / "docs.jsonl").string(), "f.json");
  EXPECT_EQ(from_checkpoint.at("perplexity"), from_final.at("perplexity"));
  // Token shards of the same text (documents split at EOS) score the same tokens.
  const auto from_shards = eval("--model " + quoted(scratch_ / "run" / "final"),
                                (scratch_ / "shards").string(), "s.json");
  EXPECT_EQ(from_shards.at("tokens"), from_final.at("tokens"));
  EXPECT_NEAR(from_shards.at("perplexity").get<double>(), from_final.at("perplexity").get<double>(),
              1e-9);
}

TEST_F(EvalCommand, PasskeyReportsAccuracyPerDistanceAndTheEffectiveWindow) {
  const auto result =
      run_lctrain("eval passkey --model " + quoted(model_) +
                  " --lengths 100,200 --trials 2 --seed 3 --json " + quoted(scratch_ / "pk.json"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "effective context window")) << result.output;
  EXPECT_TRUE(contains(result.output, "longer than the model's window")) << result.output;
  const auto report = read_json_file(scratch_ / "pk.json");
  ASSERT_EQ(report.at("results").size(), 2u);
  for (const auto& row : report.at("results")) {
    EXPECT_EQ(row.at("trials").get<int>(), 2);
    EXPECT_LE(row.at("distance").get<int64_t>(), row.at("k").get<int64_t>());
    EXPECT_GT(row.at("prompt_tokens").get<int64_t>(), row.at("distance").get<int64_t>());
  }
}

TEST_F(EvalCommand, BadOptionsAreNamed) {
  const auto stride = run_lctrain("eval ppl --model " + quoted(model_) + " --data " +
                                  quoted(scratch_ / "docs.jsonl") + " --context 16,256");
  EXPECT_EQ(stride.exit_code, 1);
  EXPECT_TRUE(contains(stride.output, "--stride 256")) << stride.output;
  const auto missing = run_lctrain("eval ppl --model " + quoted(model_) + " --data " +
                                   quoted(scratch_ / "nope") + " --context 16 --stride 4");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(contains(missing.output, "nope")) << missing.output;
  const auto no_model = run_lctrain("eval passkey --lengths 100");
  EXPECT_NE(no_model.exit_code, 0);
  EXPECT_TRUE(contains(no_model.output, "--model")) << no_model.output;
  const auto both = run_lctrain("eval passkey --lengths 100 --model a --checkpoint b");
  EXPECT_NE(both.exit_code, 0);
  EXPECT_TRUE(contains(both.output, "excludes")) << both.output;
}

}  // namespace
}  // namespace lctrain
