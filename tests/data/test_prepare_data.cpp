// `lctrain prepare-data` and the token shards it writes: documents come back exactly (each
// followed by EOS), worker count does not change the bytes, bad input is counted or refused
// with the file named, and training reads the shards.
#include <gtest/gtest.h>

#include <fstream>

#include "data/token_shards.h"
#include "io/tokenizer.h"
#include "support/error_expectations.h"
#include "support/test_support.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::quoted;
using testing::run_command;
using testing::run_lctrain;
using testing::ScratchDir;
using testing::write_text;

using testing::contains;

class PrepareData : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = testing::train_test_tokenizer(scratch_.path(), 400, /*lossless=*/true);
    std::ofstream jsonl(scratch_ / "web.jsonl");
    for (int i = 0; i < 150; ++i) {
      const std::string text = "Document " + std::to_string(i) + ": the grass is green, " +
                               std::string(static_cast<size_t>(i % 7), 'x') + "\nand é ✓.";
      documents_.push_back(text);
      jsonl << nlohmann::json{{"text", text},
                              {"meta", {{"pile_set_name", i % 3 ? "Pile-CC" : "Github"}}}}
                   .dump()
            << "\n";
    }
    jsonl.close();
    // The same records again, zstd-compressed as the Pile ships them.
    EXPECT_EQ(run_command("zstd -q -f " + quoted(scratch_ / "web.jsonl") + " -o " +
                          quoted(scratch_ / "more.jsonl.zst"))
                  .exit_code,
              0);
    // And gzip-compressed as two concatenated members (as `cat a.gz b.gz` makes).
    const std::string web = quoted(scratch_ / "web.jsonl");
    EXPECT_EQ(run_command("(head -n 75 " + web + " | gzip -c; tail -n +76 " + web +
                          " | gzip -c) > " + quoted(scratch_ / "old.jsonl.gz"))
                  .exit_code,
              0);
    const std::vector<std::string> first_file = documents_;
    for (int copy = 0; copy < 2; ++copy) {
      documents_.insert(documents_.end(), first_file.begin(), first_file.end());
    }
    write_text(scratch_ / "book.txt", "A book: one document,\nmany lines.");
    documents_.push_back("A book: one document,\nmany lines.");
  }

  testing::CommandResult prepare(const std::string& out, const std::string& extra = "") {
    return run_lctrain("prepare-data --input " + quoted(scratch_ / "web.jsonl") + " " +
                       quoted(scratch_ / "more.jsonl.zst") + " " +
                       quoted(scratch_ / "old.jsonl.gz") + " " + quoted(scratch_ / "book.txt") +
                       " --tokenizer " + quoted(tokenizer_) + " --out " + quoted(scratch_ / out) +
                       " " + extra);
  }

  ScratchDir scratch_;
  fs::path tokenizer_;
  std::vector<std::string> documents_;
};

TEST_F(PrepareData, DocumentsComeBackInOrderEachFollowedByEos) {
  const auto result = prepare("shards", "--workers 2 --tokens-per-shard 1000");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto tokenizer = io::Tokenizer::load(tokenizer_);
  const torch::Tensor tokens = data::read_token_shards(scratch_ / "shards");
  std::vector<std::string> decoded;
  std::vector<int64_t> current;
  for (int64_t i = 0; i < tokens.numel(); ++i) {
    const int64_t id = tokens[i].item<int64_t>();
    if (id == tokenizer.eos_id()) {
      decoded.push_back(tokenizer.decode(current));
      current.clear();
    } else {
      current.push_back(id);
    }
  }
  EXPECT_TRUE(current.empty()) << "the stream must end with EOS";
  ASSERT_EQ(decoded.size(), documents_.size());
  for (size_t i = 0; i < decoded.size(); ++i)
    EXPECT_EQ(decoded[i], documents_[i]) << "document " << i;

  const auto manifest = read_json_file(scratch_ / "shards" / "manifest.json");
  EXPECT_EQ(manifest.at("documents"), documents_.size());
  EXPECT_EQ(manifest.at("tokens"), tokens.numel());
  EXPECT_EQ(manifest.at("dtype"), "uint16");
  EXPECT_EQ(manifest.at("sets").at("Github").at("documents"), 150);  // 50 per jsonl file
  EXPECT_EQ(manifest.at("sets").at("Pile-CC").at("documents"), 300);
  EXPECT_EQ(manifest.at("sets").at("book.txt").at("documents"), 1);
  EXPECT_GT(manifest.at("shards").size(), 1u);  // 1000 tokens per shard
}

TEST_F(PrepareData, ShardsAreTheSameWhateverTheWorkerCount) {
  ASSERT_EQ(prepare("one", "--workers 1").exit_code, 0);
  ASSERT_EQ(prepare("three", "--workers 3").exit_code, 0);
  EXPECT_EQ(testing::read_text(scratch_ / "one" / "shard-00000.bin"),
            testing::read_text(scratch_ / "three" / "shard-00000.bin"));
}

TEST_F(PrepareData, BadLinesAreCountedWithFileAndLine) {
  std::ofstream(scratch_ / "web.jsonl", std::ios::app) << "{not json\n"
                                                       << "{\"meta\": {}}\n"
                                                       << "{\"text\": 12}\n"
                                                       << "{\"text\": \"bad \xff byte\"}\n"
                                                       << "\n";
  const auto result = prepare("shards");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto bad = read_json_file(scratch_ / "shards" / "manifest.json").at("bad_lines");
  EXPECT_EQ(bad.at("invalid_json"), 1);
  EXPECT_EQ(bad.at("missing_text"), 2);
  EXPECT_EQ(bad.at("invalid_utf8"), 1);
  EXPECT_TRUE(contains(result.output, "web.jsonl:151: not JSON")) << result.output;
  EXPECT_TRUE(contains(result.output, "web.jsonl:154: not valid UTF-8")) << result.output;
}

TEST_F(PrepareData, CorruptOrUnsupportedInputIsAClearError) {
  const fs::path zst = scratch_ / "more.jsonl.zst";
  const std::string bytes = testing::read_text(zst);
  write_text(scratch_ / "cut.jsonl.zst", bytes.substr(0, bytes.size() / 2));
  write_text(scratch_ / "junk.jsonl.zst", "definitely not zstd");
  const std::string gz = testing::read_text(scratch_ / "old.jsonl.gz");
  write_text(scratch_ / "cut.jsonl.gz", gz.substr(0, gz.size() / 3));
  write_text(scratch_ / "junk.jsonl.gz", "not gzip either, but long enough to be read");
  write_text(scratch_ / "data.csv", "a,b\n");
  for (const auto& [file, message] :
       std::vector<std::pair<std::string, std::string>>{{"cut.jsonl.zst", "truncated"},
                                                        {"junk.jsonl.zst", "corrupt zstd data"},
                                                        {"cut.jsonl.gz", "truncated"},
                                                        {"junk.jsonl.gz", "corrupt gzip data"},
                                                        {"data.csv", "unsupported input"},
                                                        {"absent.jsonl", "does not exist"}}) {
    const auto result =
        run_lctrain("prepare-data --input " + quoted(scratch_ / file) + " --tokenizer " +
                    quoted(tokenizer_) + " --out " + quoted(scratch_ / "out"));
    EXPECT_NE(result.exit_code, 0) << file;
    EXPECT_TRUE(contains(result.output, file) && contains(result.output, message))
        << file << ": " << result.output;
  }
}

TEST(TokenShards, WideVocabulariesUseFourBytesAndDamageIsRefused) {
  ScratchDir scratch;
  data::TokenShardWriter writer(scratch.path(), 4, 3);
  writer.append({0, 70000, 4294967295LL, 5});
  const auto shards = writer.finish();
  ASSERT_EQ(shards.size(), 2u);
  EXPECT_EQ(shards[0].second, 3);
  EXPECT_TRUE(torch::equal(data::read_token_shard(scratch / "shard-00000.bin"),
                           torch::tensor(std::vector<int64_t>{0, 70000, 4294967295LL})));
  const std::string bytes = testing::read_text(scratch / "shard-00000.bin");
  write_text(scratch / "cut.bin", bytes.substr(0, bytes.size() - 2));
  write_text(scratch / "magic.bin", "NOTTOKEN" + bytes.substr(8));
  testing::expect_contains(
      testing::error_message_of([&] { data::read_token_shard(scratch / "cut.bin"); }),
      {"cut.bin", "truncated"});
  testing::expect_contains(
      testing::error_message_of([&] { data::read_token_shard(scratch / "magic.bin"); }),
      {"magic.bin", "not a token shard"});
}

TEST_F(PrepareData, TrainingReadsTheShards) {
  ASSERT_EQ(prepare("shards").exit_code, 0);
  write_text(scratch_ / "model.json",
             R"({"vocab_size": 400, "hidden_size": 32, "intermediate_size": 48,
                 "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 16})");
  const auto result =
      run_lctrain("train --config " + quoted(testing::source_dir() / "configs/demo-tiny.yaml") +
                  " model.config=" + quoted(scratch_ / "model.json") +
                  " data.path=" + quoted(scratch_ / "shards") +
                  " context.target_length=64 training.steps=3 training.device=cpu "
                  "output.checkpoint_every=-1 output.save_final=false output.dir=" +
                  quoted(scratch_ / "run"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(fs::exists(scratch_ / "run" / "metrics.jsonl"));
}

}  // namespace
}  // namespace lctrain
