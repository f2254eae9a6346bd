// scripts/make_recall_corpus.py, the stage-2 pretraining corpus of the bundled tiny model: every
// input document survives with only copies of its own recent lines added, the copy documents
// repeat one run of words, and the passkey documents carry one key, asked for at their end; the
// long passkeys (the demo's fine-tuning mix) put the key at every distance up to their maximum,
// with filler sentences or the corpus's running text.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "support/test_support.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::quoted;

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> rows;
  for (const auto& line : split_lines(testing::read_text(path))) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

// A document of distinct numbered lines, so that a repeated line is recognisable.
std::string numbered_document(int id, int lines) {
  std::string text;
  for (int i = 0; i < lines; ++i) {
    text += "document " + std::to_string(id) + " line " + std::to_string(i) +
            " with some words to give it length\n";
  }
  return text;
}

// The script run on `input`, writing `output`, with the given extra arguments.
testing::CommandResult run_script(const fs::path& input, const fs::path& output,
                                  const std::string& arguments) {
  return testing::run_command(quoted(testing::source_dir() / "scripts" / "make_recall_corpus.py") +
                              " " + quoted(input) + " " + quoted(output) + " " + arguments);
}

testing::CommandResult make_corpus(const fs::path& input, const fs::path& output, int seed) {
  return run_script(input, output,
                    "--passkeys 6 --copies 5 --repeat-rate 0.3 --seed " + std::to_string(seed));
}

TEST(RecallCorpus, KeepsEveryDocumentAddsOnlyRecentRepeatsAndWellFormedPasskeys) {
  testing::ScratchDir scratch;
  std::map<std::string, std::string> originals;  // first line -> whole text
  std::string input;
  for (int id = 0; id < 4; ++id) {
    const std::string text = numbered_document(id, 60);
    originals[split_lines(text).front()] = text;
    input += nlohmann::json{{"text", text}, {"meta", {{"pile_set_name", "Github"}}}}.dump() + "\n";
  }
  testing::write_text(scratch / "in.jsonl", input);
  const auto result = make_corpus(scratch / "in.jsonl", scratch / "out.jsonl", 0);
  ASSERT_EQ(result.exit_code, 0) << result.output;

  const auto rows = read_jsonl(scratch / "out.jsonl");
  ASSERT_EQ(rows.size(), 15u);
  int passkeys = 0, copies = 0;
  size_t added_lines = 0;
  const std::regex key_sentence(
      "The pass key is (\\d{5})\\. Remember it\\. (\\d{5}) is the pass key\\.");
  for (const auto& row : rows) {
    const std::string text = row.at("text");
    if (row.at("meta").at("pile_set_name") == "Copy") {
      // One run of words, written two or three times.
      ++copies;
      bool repeated = false;
      for (const int times : {2, 3}) {
        const size_t run_size = (text.size() - (times - 1)) / times;
        std::string expected = text.substr(0, run_size);
        for (int i = 1; i < times; ++i) expected += " " + text.substr(0, run_size);
        repeated = repeated || (run_size > 0 && expected == text);
      }
      EXPECT_TRUE(repeated) << text;
      continue;
    }
    if (row.at("meta").at("pile_set_name") == "Passkey") {
      ++passkeys;
      std::smatch match;
      ASSERT_TRUE(std::regex_search(text, match, key_sentence)) << text;
      EXPECT_EQ(match[1], match[2]);
      const std::string answer = "What is the pass key? The pass key is " + match[1].str() + ".";
      EXPECT_EQ(text.substr(text.size() - answer.size()), answer) << text;
      continue;
    }
    // Removing the added lines gives the original back: the original's lines are a
    // subsequence, and every other line repeats one written shortly before it.
    const auto lines = split_lines(text);
    ASSERT_TRUE(originals.count(lines.front())) << lines.front();
    const auto original = split_lines(originals.at(lines.front()));
    size_t next = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (next < original.size() && lines[i] == original[next]) {
        ++next;
        continue;
      }
      ++added_lines;
      const auto reach_start = i > 30 ? i - 30 : 0;
      EXPECT_NE(std::find(lines.begin() + reach_start, lines.begin() + i, lines[i]),
                lines.begin() + i)
          << "line " << i << " is neither the original's next line nor a recent one: " << lines[i];
    }
    EXPECT_EQ(next, original.size()) << "the original lost lines";
  }
  EXPECT_EQ(passkeys, 6);
  EXPECT_EQ(copies, 5);
  EXPECT_GT(added_lines, 20u) << "a repeat rate of 0.3 over 240 lines added almost nothing";

  // The seed decides the corpus.
  ASSERT_EQ(make_corpus(scratch / "in.jsonl", scratch / "again.jsonl", 0).exit_code, 0);
  ASSERT_EQ(make_corpus(scratch / "in.jsonl", scratch / "other.jsonl", 1).exit_code, 0);
  EXPECT_EQ(testing::read_text(scratch / "again.jsonl"), testing::read_text(scratch / "out.jsonl"));
  EXPECT_NE(testing::read_text(scratch / "other.jsonl"), testing::read_text(scratch / "out.jsonl"));
}

// Filler sentences before and after the key of each passkey document in a corpus made from one
// short document with the given extra arguments.
std::vector<std::pair<int, int>> passkey_fillers(const std::string& arguments) {
  testing::ScratchDir scratch;
  testing::write_text(scratch / "in.jsonl", nlohmann::json{{"text", "one line\nanother"}}.dump());
  const auto result = run_script(scratch / "in.jsonl", scratch / "out.jsonl", arguments);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  const std::string filler = "The grass is green.";
  const auto count = [&](const std::string& text) {
    int n = 0;
    for (auto at = text.find(filler); at != std::string::npos; at = text.find(filler, at + 1)) ++n;
    return n;
  };
  std::vector<std::pair<int, int>> fillers;
  for (const auto& row : read_jsonl(scratch / "out.jsonl")) {
    if (row.value("meta", nlohmann::json::object()).value("pile_set_name", "") != "Passkey")
      continue;
    const std::string text = row.at("text");
    const auto key = text.find("The pass key is ");
    fillers.emplace_back(count(text.substr(0, key)), count(text.substr(key)));
  }
  return fillers;
}

TEST(RecallCorpus, LongPasskeysPutTheKeyAtEveryDistanceUpToTheirMaximum) {
  const auto mean_after = [](const std::vector<std::pair<int, int>>& fillers) {
    double sum = 0;
    for (const auto& [before, after] : fillers) sum += after;
    return sum / static_cast<double>(fillers.size());
  };
  const auto long_keys = passkey_fillers("--passkeys 0 --long-passkeys 400 --long-max-fillers 12");
  ASSERT_EQ(long_keys.size(), 400u);
  std::set<int> distances;
  for (const auto& [before, after] : long_keys) {
    EXPECT_LE(before + after, 12);
    distances.insert(after);
  }
  EXPECT_EQ(distances.size(), 13u) << "some distance from 0 to 12 fillers never drawn";
  // Uniform over 0..12 fillers after the key: mean 6. The short passkeys draw the fillers before
  // the key first, so short distances dominate (mean 3 at the same maximum).
  EXPECT_NEAR(mean_after(long_keys), 6.0, 0.8);
  const auto short_keys = passkey_fillers("--passkeys 400 --max-fillers 12");
  ASSERT_EQ(short_keys.size(), 400u);
  EXPECT_NEAR(mean_after(short_keys), 3.0, 0.8);

  // A floor on the distance: uniform over 8..12 fillers (mean 10), none nearer.
  const auto far_keys = passkey_fillers(
      "--passkeys 0 --long-passkeys 400 --long-min-fillers 8 --long-max-fillers 12");
  ASSERT_EQ(far_keys.size(), 400u);
  std::set<int> far_distances;
  for (const auto& [before, after] : far_keys) {
    EXPECT_LE(before + after, 12);
    far_distances.insert(after);
  }
  EXPECT_EQ(far_distances, (std::set<int>{8, 9, 10, 11, 12}));
  EXPECT_NEAR(mean_after(far_keys), 10.0, 0.4);
}

// The text passkeys: the same prompt, with running text of the input's documents where the long
// passkeys have filler sentences, and the key-to-question distance uniform up to the maximum.
TEST(RecallCorpus, TextPasskeysFillWithTheInputsRunningTextAtEveryDistance) {
  testing::ScratchDir scratch;
  std::vector<std::string> documents;
  std::string input;
  for (int id = 0; id < 3; ++id) {
    documents.push_back(numbered_document(id, 40));
    input += nlohmann::json{{"text", documents.back()}}.dump() + "\n";
  }
  testing::write_text(scratch / "in.jsonl", input);
  const auto result =
      run_script(scratch / "in.jsonl", scratch / "out.jsonl",
                 "--passkeys 0 --text-passkeys 300 --long-max-fillers 10 --repeat-rate 0 --seed 3");
  ASSERT_EQ(result.exit_code, 0) << result.output;

  // Text that may run from one document into the next (the filler is drawn from the documents
  // written one after another).
  const auto from_the_documents = [&](const std::string& text) {
    for (const auto& first : documents) {
      for (const auto& second : documents) {
        if ((first + "\n" + second).find(text) != std::string::npos) return true;
      }
    }
    return false;
  };
  const std::string instruction =
      "There is an important info hidden inside a lot of irrelevant "
      "text. Find it and memorize them. I will quiz you about the "
      "important information there. ";
  const std::regex layout(
      "([\\s\\S]*?) ?The pass key is (\\d{5})\\. Remember it\\. (\\d{5}) is the pass key\\. "
      "?([\\s\\S]*?) ?"
      "What is the pass key\\? The pass key is (\\d{5})\\.");
  std::set<long> distances;
  double distance_sum = 0;
  int passkeys = 0;
  for (const auto& row : read_jsonl(scratch / "out.jsonl")) {
    if (row.value("meta", nlohmann::json::object()).value("pile_set_name", "") != "Passkey")
      continue;
    const std::string text = row.at("text");
    ASSERT_EQ(text.rfind(instruction, 0), 0u) << text;
    std::smatch match;
    const std::string body = text.substr(instruction.size());
    ASSERT_TRUE(std::regex_match(body, match, layout)) << text;
    EXPECT_TRUE(match[2] == match[3] && match[3] == match[5]) << text;
    EXPECT_TRUE(from_the_documents(match[1])) << "not the input's text: " << match[1];
    EXPECT_TRUE(from_the_documents(match[4])) << "not the input's text: " << match[4];
    // 85 characters of text stand for one filler sentence (36 tokens).
    const long distance = std::lround(static_cast<double>(match[4].length()) / 85.0);
    EXPECT_LE(distance, 10) << match[4];
    distances.insert(distance);
    distance_sum += static_cast<double>(distance);
    ++passkeys;
  }
  EXPECT_EQ(passkeys, 300);
  EXPECT_GE(distances.size(), 10u) << "the distances do not spread over 0..10 fillers' worth";
  EXPECT_NEAR(distance_sum / passkeys, 5.0, 0.8) << "distances not uniform over 0..10";

  // Nothing to fill them with: refused by name.
  testing::write_text(scratch / "empty.jsonl", "");
  const auto empty =
      run_script(scratch / "empty.jsonl", scratch / "none.jsonl", "--text-passkeys 2");
  EXPECT_NE(empty.exit_code, 0);
  EXPECT_TRUE(contains(empty.output, "--text-passkeys")) << empty.output;
  EXPECT_FALSE(fs::exists(scratch / "none.jsonl"));
}

TEST(RecallCorpus, ANegativeCountIsRefusedByName) {
  testing::ScratchDir scratch;
  testing::write_text(scratch / "in.jsonl", nlohmann::json{{"text", "a line"}}.dump());
  const auto result =
      run_script(scratch / "in.jsonl", scratch / "out.jsonl", "--long-max-fillers -1");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_TRUE(contains(result.output, "--long-max-fillers: must be >= 0")) << result.output;
  EXPECT_FALSE(fs::exists(scratch / "out.jsonl"));
  const auto inverted = run_script(scratch / "in.jsonl", scratch / "out.jsonl",
                                   "--long-min-fillers 9 --long-max-fillers 4");
  EXPECT_NE(inverted.exit_code, 0);
  EXPECT_TRUE(contains(inverted.output, "--long-min-fillers 9 is above --long-max-fillers 4"))
      << inverted.output;
  EXPECT_FALSE(fs::exists(scratch / "out.jsonl"));
}

}  // namespace
}  // namespace lctrain
