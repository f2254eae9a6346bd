// scripts/make_copy_test.py, the copy test of issue 6: AAA documents write one run of corpus words
// three times, ABC documents start with the same run and go on with two new ones; every word comes
// from the corpus's common words, and the same seed gives the same files.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "support/test_support.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::quoted;

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, separator);) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

// Each document's words.
std::vector<std::vector<std::string>> read_documents(const fs::path& path) {
  std::vector<std::vector<std::string>> documents;
  for (const auto& line : split(testing::read_text(path), '\n')) {
    documents.push_back(split(nlohmann::json::parse(line).at("text").get<std::string>(), ' '));
  }
  return documents;
}

testing::CommandResult make_copy_test(const fs::path& corpus, const fs::path& out,
                                      const std::string& flags) {
  return testing::run_command(quoted(testing::source_dir() / "scripts" / "make_copy_test.py") +
                              " " + quoted(corpus) + " --out " + quoted(out) + " " + flags);
}

std::vector<std::string> slice(const std::vector<std::string>& words, size_t run, int part) {
  return {words.begin() + part * run, words.begin() + (part + 1) * run};
}

TEST(CopyTest, AaaRepeatsOneRunAndAbcSharesOnlyItsFirstRun) {
  testing::ScratchDir scratch;
  std::set<std::string> corpus_words;
  std::string corpus;
  for (int d = 0; d < 30; ++d) {
    std::string text;
    for (int w = 0; w < 50; ++w) {
      const std::string word = "word" + std::string(1, static_cast<char>('a' + (d * 7 + w) % 26)) +
                               std::string(1, static_cast<char>('a' + w % 13));
      corpus_words.insert(word);
      text += word + (w % 10 == 9 ? "\n" : " ");
    }
    corpus += nlohmann::json{{"text", text + " 123 x1"}}.dump() + "\n";  // non-words are left out
  }
  testing::write_text(scratch / "corpus.jsonl", corpus);

  const auto result =
      make_copy_test(scratch / "corpus.jsonl", scratch / "a", "--runs 6 --words 12 --seed 5");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto aaa = read_documents(scratch / "a" / "copy-aaa.jsonl");
  const auto abc = read_documents(scratch / "a" / "copy-abc.jsonl");
  ASSERT_EQ(aaa.size(), 6u);
  ASSERT_EQ(abc.size(), 6u);
  for (size_t d = 0; d < aaa.size(); ++d) {
    ASSERT_EQ(aaa[d].size(), 36u);
    ASSERT_EQ(abc[d].size(), 36u);
    EXPECT_EQ(slice(aaa[d], 12, 1), slice(aaa[d], 12, 0)) << "document " << d;
    EXPECT_EQ(slice(aaa[d], 12, 2), slice(aaa[d], 12, 0)) << "document " << d;
    EXPECT_EQ(slice(abc[d], 12, 0), slice(aaa[d], 12, 0)) << "document " << d;
    EXPECT_NE(slice(abc[d], 12, 1), slice(abc[d], 12, 0)) << "document " << d;
    EXPECT_NE(slice(abc[d], 12, 2), slice(abc[d], 12, 1)) << "document " << d;
    for (const auto& word : abc[d]) EXPECT_EQ(corpus_words.count(word), 1u) << word;
  }

  ASSERT_EQ(make_copy_test(scratch / "corpus.jsonl", scratch / "b", "--runs 6 --words 12 --seed 5")
                .exit_code,
            0);
  EXPECT_EQ(testing::read_text(scratch / "b" / "copy-abc.jsonl"),
            testing::read_text(scratch / "a" / "copy-abc.jsonl"));
  ASSERT_EQ(make_copy_test(scratch / "corpus.jsonl", scratch / "c", "--runs 6 --words 12 --seed 6")
                .exit_code,
            0);
  EXPECT_NE(testing::read_text(scratch / "c" / "copy-abc.jsonl"),
            testing::read_text(scratch / "a" / "copy-abc.jsonl"));
}

TEST(CopyTest, ACorpusWithoutWordsIsRefusedByName) {
  testing::ScratchDir scratch;
  testing::write_text(scratch / "digits.jsonl", "{\"text\": \"12 34 56\"}\n");
  const auto result = make_copy_test(scratch / "digits.jsonl", scratch / "out", "");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_TRUE(contains(result.output, "digits.jsonl")) << result.output;
  EXPECT_FALSE(fs::exists(scratch / "out" / "copy-aaa.jsonl"));
}

}  // namespace
}  // namespace lctrain
