// io::Tokenizer on a SentencePiece BPE model trained here with spm_train: LLaMA's BOS/EOS
// conventions, round trips, agreement with spm_encode, and errors for missing or broken models.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "support/test_support.h"
#include "util/error.h"

namespace lctrain {
namespace {

using testing::quoted;
using testing::read_text;
using testing::run_command;
using testing::ScratchDir;
using testing::write_text;

constexpr int64_t kVocabSize = 300;

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = std::make_unique<ScratchDir>();
    model_file_ = testing::train_test_tokenizer(scratch_->path(), kVocabSize);
  }
  static void TearDownTestSuite() { scratch_.reset(); }

  static std::unique_ptr<ScratchDir> scratch_;
  static std::filesystem::path model_file_;
};

std::unique_ptr<ScratchDir> TokenizerTest::scratch_;
std::filesystem::path TokenizerTest::model_file_;

// Round-trip sentences: words seen in training and unseen words built from seen characters.
const std::vector<std::string> kRoundTrip = {
    "The grass is green",
    "A model reads long documents before the sun rises.",
    "Zebras jump over 2048 quiet bridges, then sleep?",
    "Unseen words like Quixotic vexed baking foxes.",
    "x",
};

TEST_F(TokenizerTest, ReportsVocabularyAndSpecialIds) {
  const auto tokenizer = io::Tokenizer::load(model_file_);
  EXPECT_EQ(tokenizer.vocab_size(), kVocabSize);
  EXPECT_EQ(tokenizer.bos_id(), 1);
  EXPECT_EQ(tokenizer.eos_id(), 2);
}

TEST_F(TokenizerTest, EncodePrependsBosAndNoEosByDefault) {
  const auto tokenizer = io::Tokenizer::load(model_file_);
  const auto ids = tokenizer.encode("The grass is green");
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_NE(ids.back(), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 0);
  for (const int64_t id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, kVocabSize);
  }
}

TEST_F(TokenizerTest, AddBosAndAddEosControlTheEnds) {
  const auto tokenizer = io::Tokenizer::load(model_file_);
  const std::string text = "The grass is green";
  const auto plain = tokenizer.encode(text, /*add_bos=*/false, /*add_eos=*/false);
  const auto with_bos = tokenizer.encode(text);
  const auto with_both = tokenizer.encode(text, /*add_bos=*/true, /*add_eos=*/true);
  const auto with_eos = tokenizer.encode(text, /*add_bos=*/false, /*add_eos=*/true);

  ASSERT_FALSE(plain.empty());
  EXPECT_NE(plain.front(), 1);
  EXPECT_EQ(with_bos, [&] {
    std::vector<int64_t> expected = {1};
    expected.insert(expected.end(), plain.begin(), plain.end());
    return expected;
  }());
  ASSERT_EQ(with_both.size(), plain.size() + 2);
  EXPECT_EQ(with_both.front(), 1);
  EXPECT_EQ(with_both.back(), 2);
  EXPECT_TRUE(std::equal(plain.begin(), plain.end(), with_both.begin() + 1));
  ASSERT_EQ(with_eos.size(), plain.size() + 1);
  EXPECT_EQ(with_eos.back(), 2);
  EXPECT_TRUE(std::equal(plain.begin(), plain.end(), with_eos.begin()));
}

TEST_F(TokenizerTest, DecodeInvertsEncodeAndSkipsControlTokens) {
  const auto tokenizer = io::Tokenizer::load(model_file_);
  for (const std::string& text : kRoundTrip) {
    // BOS/EOS are control pieces: decode drops them, so they need not be stripped first.
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text)), text);
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text, true, true)), text);
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text, false, false)), text);
  }
  EXPECT_EQ(tokenizer.decode({}), "");
  EXPECT_EQ(tokenizer.decode({1, 2}), "");
}

TEST_F(TokenizerTest, PiecesAreSubwordsNotCharactersOrBytes) {
  // Guards the round trip above: a model that fell back to characters would pass it too.
  const auto tokenizer = io::Tokenizer::load(model_file_);
  const std::string text = "The grass is green and the sky is blue over the quiet valley.";
  const auto ids = tokenizer.encode(text, false, false);
  EXPECT_LT(ids.size(), text.size() / 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0) << "no unknown pieces expected";
}

TEST_F(TokenizerTest, AgreesWithSpmEncode) {
  const auto tokenizer = io::Tokenizer::load(model_file_);
  std::string input;
  for (const std::string& text : kRoundTrip) input += text + "\n";
  write_text(scratch_->path() / "spm_input.txt", input);
  const auto output_file = scratch_->path() / "spm_output.txt";
  const auto result =
      run_command("spm_encode --model=" + quoted(model_file_) + " --output_format=id < " +
                  quoted(scratch_->path() / "spm_input.txt") + " > " + quoted(output_file));
  ASSERT_EQ(result.exit_code, 0) << result.output;

  std::istringstream lines(read_text(output_file));
  std::string line;
  size_t index = 0;
  while (std::getline(lines, line)) {
    ASSERT_LT(index, kRoundTrip.size()) << "spm_encode printed extra lines";
    std::vector<int64_t> expected;
    std::istringstream words(line);
    int64_t id = 0;
    while (words >> id) expected.push_back(id);
    // spm_encode adds neither BOS nor EOS.
    EXPECT_EQ(tokenizer.encode(kRoundTrip[index], false, false), expected) << kRoundTrip[index];
    ++index;
  }
  EXPECT_EQ(index, kRoundTrip.size());
}

TEST_F(TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  const auto tokenizer = io::Tokenizer::load(model_file_);
  EXPECT_THROW(tokenizer.decode({5, kVocabSize}), Error);
  EXPECT_THROW(tokenizer.decode({-1}), Error);
}

TEST_F(TokenizerTest, FromModelDirLoadsTokenizerModel) {
  const auto tokenizer = io::Tokenizer::from_model_dir(scratch_->path());
  EXPECT_EQ(tokenizer.vocab_size(), kVocabSize);
  EXPECT_EQ(tokenizer.encode("The grass is green"),
            io::Tokenizer::load(model_file_).encode("The grass is green"));
}

// Runs `body`, expecting lctrain::Error whose message contains every string in `needles`.
template <typename Body>
void expect_error(Body&& body, const std::vector<std::string>& needles) {
  try {
    body();
    ADD_FAILURE() << "expected lctrain::Error";
  } catch (const Error& error) {
    const std::string message = error.what();
    for (const std::string& needle : needles) {
      EXPECT_NE(message.find(needle), std::string::npos)
          << "'" << needle << "' not in: " << message;
    }
  }
}

TEST_F(TokenizerTest, MissingFileIsAnErrorNamingThePath) {
  ScratchDir scratch;
  const auto missing = scratch / "nothing-here.model";
  expect_error([&] { io::Tokenizer::load(missing); }, {missing.string()});
}

TEST_F(TokenizerTest, GarbageFileIsAnErrorNamingThePath) {
  ScratchDir scratch;
  const auto garbage = scratch / "tokenizer.model";
  std::mt19937 generator(1234);
  std::string bytes(4096, '\0');
  for (char& byte : bytes) byte = static_cast<char>(generator() & 0xff);
  write_text(garbage, bytes);
  expect_error([&] { io::Tokenizer::load(garbage); },
               {garbage.string(), "not a valid SentencePiece model"});
  expect_error([&] { io::Tokenizer::from_model_dir(scratch.path()); }, {garbage.string()});
}

TEST_F(TokenizerTest, TextFileIsAnErrorNamingThePath) {
  ScratchDir scratch;
  const auto text = scratch / "tokenizer.model";
  write_text(text, "{\"this\": \"is a tokenizer.json, not a SentencePiece model\"}\n");
  expect_error([&] { io::Tokenizer::load(text); }, {text.string()});
}

TEST_F(TokenizerTest, EmptyFileIsAnErrorNamingThePath) {
  ScratchDir scratch;
  const auto empty = scratch / "tokenizer.model";
  write_text(empty, "");
  expect_error([&] { io::Tokenizer::load(empty); }, {empty.string()});
}

TEST_F(TokenizerTest, ModelDirWithoutTokenizerModelIsAnError) {
  ScratchDir scratch;
  write_text(scratch / "tokenizer.json", "{}");
  expect_error([&] { io::Tokenizer::from_model_dir(scratch.path()); },
               {scratch.path().string(), "tokenizer.model"});
}

TEST_F(TokenizerTest, DirectoryGivenAsModelFileIsAnError) {
  expect_error([&] { io::Tokenizer::load(scratch_->path()); }, {scratch_->path().string()});
}

}  // namespace
}  // namespace lctrain
