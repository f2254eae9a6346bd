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

// A long document of words, single and double spaces, newlines, tabs and non-ASCII text.
std::string long_document(size_t bytes) {
  const char* words[] = {"the", "grass", "is", "green,", "é", "✓", "sky", "blue.", "x", "Zebra"};
  const char* gaps[] = {" ", " ", " ", "  ", "\n", " \n ", "\t", " "};
  std::string text;
  for (size_t i = 0; text.size() < bytes; ++i) {
    text += words[(i * 7 + i / 3) % 10];
    text += gaps[(i * 5 + i / 11) % 8];
  }
  return text + "end";
}

TEST_F(PrepareData, LongDocumentsInPiecesGiveTheTokensOfTheWholeDocument) {
  std::ofstream jsonl(scratch_ / "long.jsonl");
  for (const size_t bytes : {size_t{200'000}, size_t{30}, size_t{50'000}}) {
    jsonl << nlohmann::json{{"text", long_document(bytes)}}.dump() << "\n";
  }
  jsonl.close();
  write_text(scratch_ / "long.txt", long_document(70'000));
  const fs::path plain = testing::train_test_tokenizer(scratch_ / "plain", 300, false);
  for (const fs::path& tokenizer : {tokenizer_, plain}) {
    const auto run = [&](const std::string& out, const std::string& extra) {
      const auto result =
          run_lctrain("prepare-data --input " + quoted(scratch_ / "long.jsonl") + " " +
                      quoted(scratch_ / "long.txt") + " --tokenizer " + quoted(tokenizer) +
                      " --out " + quoted(scratch_ / out) + " --workers 2 --add-bos " + extra);
      EXPECT_EQ(result.exit_code, 0) << result.output;
    };
    run("whole", "--piece-bytes 64MB");
    run("pieces", "--piece-bytes 1KiB");  // hundreds of cuts
    EXPECT_EQ(testing::read_text(scratch_ / "pieces" / "shard-00000.bin"),
              testing::read_text(scratch_ / "whole" / "shard-00000.bin"))
        << tokenizer;
    const auto whole = read_json_file(scratch_ / "whole" / "manifest.json");
    const auto pieces = read_json_file(scratch_ / "pieces" / "manifest.json");
    for (const char* key : {"documents", "tokens", "bytes", "sets"}) {
      EXPECT_EQ(pieces.at(key), whole.at(key)) << key;
    }
    EXPECT_EQ(pieces.at("documents"), 4);
    fs::remove_all(scratch_ / "whole");
    fs::remove_all(scratch_ / "pieces");
  }
}

TEST_F(PrepareData, DocumentsAboveTheMaximumAreSkippedOrSplitAndCounted) {
  std::ofstream jsonl(scratch_ / "mixed.jsonl");
  jsonl << nlohmann::json{{"text", "short one"}}.dump() << "\n"
        << nlohmann::json{{"text", long_document(30'000)}}.dump() << "\n"
        << nlohmann::json{{"text", "short two"}}.dump() << "\n";
  jsonl.close();
  write_text(scratch_ / "book.txt", long_document(25'000));
  const auto result =
      run_lctrain("prepare-data --input " + quoted(scratch_ / "mixed.jsonl") + " " +
                  quoted(scratch_ / "book.txt") + " --tokenizer " + quoted(tokenizer_) + " --out " +
                  quoted(scratch_ / "shards") + " --max-document-bytes 10KB");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "mixed.jsonl:2:")) << result.output;
  const auto manifest = read_json_file(scratch_ / "shards" / "manifest.json");
  EXPECT_EQ(manifest.at("bad_lines").at("too_long"), 1);
  EXPECT_EQ(manifest.at("max_document_bytes"), 10'000);
  // 25 KB of text in parts of at most 10 KB: three documents, two of them split off.
  EXPECT_EQ(manifest.at("split_documents"), 2);
  EXPECT_EQ(manifest.at("sets").at("book.txt").at("documents"), 3);
  EXPECT_EQ(manifest.at("sets").at("mixed.jsonl").at("documents"), 2);
  // The parts hold the whole file: nothing lost at the cuts.
  EXPECT_EQ(manifest.at("sets").at("book.txt").at("bytes"), long_document(25'000).size());

  const auto refused = run_lctrain("prepare-data --input " + quoted(scratch_ / "mixed.jsonl") +
                                   " --tokenizer " + quoted(tokenizer_) + " --out " +
                                   quoted(scratch_ / "zero") + " --max-document-bytes 0");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(contains(refused.output, "--max-document-bytes")) << refused.output;
}

TEST_F(PrepareData, AManifestWithANonsenseVocabularySizeIsRefused) {
  ASSERT_EQ(prepare("shards").exit_code, 0);
  const fs::path manifest_path = scratch_ / "shards" / "manifest.json";
  auto manifest = read_json_file(manifest_path);
  for (const nlohmann::json& bad : {nlohmann::json(-5), nlohmann::json("lots")}) {
    manifest["vocab_size"] = bad;
    write_text(manifest_path, manifest.dump(1));
    const auto result =
        run_lctrain("eval ppl --model " + quoted(testing::fixture_dir("tiny-llama-parity")) +
                    " --data " + quoted(scratch_ / "shards") + " --context 16 --stride 4");
    EXPECT_EQ(result.exit_code, 1) << bad << "\n" << result.output;
    EXPECT_TRUE(contains(result.output, manifest_path.string())) << result.output;
    EXPECT_TRUE(
        contains(result.output, "'vocab_size' must be a positive integer, got " + bad.dump()))
        << result.output;
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
