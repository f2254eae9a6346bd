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

TEST_F(EvalCommand, AnEmptyDataFolderIsBlamedOnTheData) {
  // The model folder has no tokenizer: the data must be what the error is about.
  const fs::path bare = scratch_ / "bare";
  fs::create_directories(bare);
  for (const char* file : {"config.json", "model.safetensors"}) {
    fs::copy_file(model_ / file, bare / file);
  }
  fs::create_directories(scratch_ / "empty");
  const auto result = run_lctrain("eval ppl --model " + quoted(bare) + " --data " +
                                  quoted(scratch_ / "empty") + " --context 16 --stride 4");
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_TRUE(contains(result.output, "neither token shards")) << result.output;
  EXPECT_FALSE(contains(result.output, "tokenizer")) << result.output;
}

TEST_F(EvalCommand, ATokenizerLargerThanTheModelsVocabularyIsRefused) {
  // 300 pieces against the model's vocab_size of 257, whatever the prompt.
  const fs::path big = scratch_ / "big-tokenizer";
  const fs::path tokenizer = testing::train_test_tokenizer(big, 300);
  const std::string with_big = "--model " + quoted(model_) + " --tokenizer " + quoted(tokenizer);
  const auto expect_refused = [&](const std::string& args) {
    const auto result = run_lctrain(args);
    EXPECT_EQ(result.exit_code, 1) << args << "\n" << result.output;
    EXPECT_TRUE(contains(result.output, tokenizer.string() + " has 300 pieces")) << result.output;
    EXPECT_TRUE(contains(result.output, (model_ / "config.json").string())) << result.output;
    EXPECT_TRUE(contains(result.output, "vocab_size 257")) << result.output;
  };
  expect_refused("generate " + with_big + " --prompt t --max-new-tokens 2");
  expect_refused("generate " + with_big + " --prompt the --max-new-tokens 2");
  expect_refused("eval ppl " + with_big + " --data " + quoted(scratch_ / "docs.jsonl") +
                 " --context 16 --stride 4");
  expect_refused("eval passkey " + with_big + " --lengths 64 --trials 1");
  // The model's own, smaller tokenizer still runs.
  const auto own =
      run_lctrain("generate --model " + quoted(model_) + " --prompt t --max-new-tokens 2");
  EXPECT_EQ(own.exit_code, 0) << own.output;
}

TEST_F(EvalCommand, LengthsThatCannotFitAreRefusedUpFrontWithTheMemoryNeeded) {
  // A billion-token passkey prompt: terabytes of KV cache and attention workspace.
  const auto passkey =
      run_lctrain("eval passkey --model " + quoted(model_) + " --lengths 256,1000000000");
  EXPECT_EQ(passkey.exit_code, 1) << passkey.output;
  EXPECT_TRUE(contains(passkey.output, "k = 1000000000 would need about")) << passkey.output;
  EXPECT_TRUE(contains(passkey.output, "KV cache")) << passkey.output;
  EXPECT_TRUE(contains(passkey.output, "TB")) << passkey.output;
  EXPECT_TRUE(contains(passkey.output, "this machine has")) << passkey.output;
  const auto generate = run_lctrain("generate --model " + quoted(model_) +
                                    " --prompt the --max-new-tokens 10000000000");
  EXPECT_EQ(generate.exit_code, 1) << generate.output;
  EXPECT_TRUE(contains(generate.output, "--max-new-tokens 10000000000")) << generate.output;
  EXPECT_TRUE(contains(generate.output, "would need about")) << generate.output;
  // Without the cache every step recomputes the whole sequence: refused as well.
  const auto uncached = run_lctrain("generate --model " + quoted(model_) +
                                    " --prompt the --no-cache --max-new-tokens 1000000000");
  EXPECT_EQ(uncached.exit_code, 1) << uncached.output;
  EXPECT_TRUE(contains(uncached.output, "attention workspace")) << uncached.output;
  // Ordinary lengths still run.
  const auto small =
      run_lctrain("generate --model " + quoted(model_) + " --prompt the --max-new-tokens 3");
  EXPECT_EQ(small.exit_code, 0) << small.output;
}

TEST_F(EvalCommand, PerplexityOverNoScoredTokenIsAnErrorSayingWhy) {
  const std::string ppl = "eval ppl --model " + quoted(model_) + " --data " +
                          quoted(scratch_ / "docs.jsonl") + " --context 16 --stride 4 --json " +
                          quoted(scratch_ / "ppl.json");
  // One token per document: its first token is never predicted, so nothing would be scored.
  const auto one_token = run_lctrain(ppl + " --max-tokens 1");
  EXPECT_EQ(one_token.exit_code, 1) << one_token.output;
  EXPECT_TRUE(contains(one_token.output, "--max-tokens 1 leaves nothing to score"))
      << one_token.output;
  EXPECT_FALSE(contains(one_token.output, "nan")) << one_token.output;
  // Every document shorter than asked.
  const auto too_short = run_lctrain(ppl + " --min-tokens 100000");
  EXPECT_EQ(too_short.exit_code, 1) << too_short.output;
  EXPECT_TRUE(contains(too_short.output, "no document of at least 100000 tokens"))
      << too_short.output;
  // A corpus whose only document is a single token.
  testing::write_text(scratch_ / "tiny.jsonl", nlohmann::json{{"text", "the"}}.dump() + "\n");
  const auto tiny = run_lctrain("eval ppl --model " + quoted(model_) + " --data " +
                                quoted(scratch_ / "tiny.jsonl") + " --context 16 --stride 4");
  EXPECT_EQ(tiny.exit_code, 1) << tiny.output;
  EXPECT_TRUE(contains(tiny.output, "no document of at least 2 tokens")) << tiny.output;
  EXPECT_FALSE(fs::exists(scratch_ / "ppl.json"));
  // Two tokens is the least that scores one.
  const auto two = run_lctrain(ppl + " --max-tokens 2");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const auto report = read_json_file(scratch_ / "ppl.json");
  EXPECT_EQ(report.at("windows").at(0).at("tokens").get<int64_t>(),
            static_cast<int64_t>(report.at("per_document").size()));
  EXPECT_TRUE(report.at("windows").at(0).at("perplexity").is_number());
}

}  // namespace
}  // namespace lctrain
