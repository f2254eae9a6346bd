// Passkey retrieval: the prompt is the paper's and puts the key where asked, answers are read the
// way the paper scores them, and the effective window follows the 20% rule.
#include <gtest/gtest.h>

#include "eval/passkey.h"
#include "support/error_expectations.h"
#include "support/test_support.h"

namespace lctrain {
namespace {

class Passkey : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new testing::ScratchDir();
    tokenizer_ = new io::Tokenizer(
        io::Tokenizer::load(testing::train_test_tokenizer(scratch_->path(), 400, true)));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete scratch_;
  }
  static testing::ScratchDir* scratch_;
  static io::Tokenizer* tokenizer_;
};
testing::ScratchDir* Passkey::scratch_ = nullptr;
io::Tokenizer* Passkey::tokenizer_ = nullptr;

TEST_F(Passkey, PromptPutsTheKeyAsCloseToTheAskedDistanceAsWholeFillersAllow) {
  const auto filler = tokenizer_->encode(
      "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.",
      false);
  for (const int64_t distance : {120, 500, 1000, 4000}) {
    SCOPED_TRACE(distance);
    const auto prompt = eval::build_passkey_prompt(*tokenizer_, "48213", distance);
    EXPECT_EQ(prompt.distance, static_cast<int64_t>(prompt.tokens.size()) - prompt.key_position);
    EXPECT_LE(prompt.distance, distance);
    EXPECT_GT(prompt.distance, distance - static_cast<int64_t>(filler.size()));
    // The key's sentence starts exactly at key_position...
    const std::vector<int64_t> from_key(prompt.tokens.begin() + prompt.key_position,
                                        prompt.tokens.end());
    const std::string tail = tokenizer_->decode(from_key);
    EXPECT_EQ(tail.rfind("The pass key is 48213. Remember it. 48213 is the pass key.", 0), 0u)
        << tail.substr(0, 80);
    // ...after the instruction and one filler, and the prompt ends with the question.
    const std::string text = tokenizer_->decode(prompt.tokens);
    EXPECT_EQ(text.rfind("There is an important info hidden inside a lot of irrelevant text.", 0),
              0u);
    const std::string question = "What is the pass key? The pass key is";
    EXPECT_EQ(text.substr(text.size() - question.size()), question);
    EXPECT_EQ(prompt.tokens.front(), tokenizer_->bos_id());
  }
  testing::expect_contains(
      testing::error_message_of([&] { eval::build_passkey_prompt(*tokenizer_, "48213", 10); }),
      {"distance 10"});
}

TEST(PasskeyScoring, TheAnswerIsTheFirstRunOfDigits) {
  EXPECT_TRUE(eval::answer_matches(" 48213. Remember", "48213"));
  EXPECT_TRUE(eval::answer_matches("48213", "48213"));
  EXPECT_FALSE(eval::answer_matches(" 48214.", "48213"));
  EXPECT_FALSE(eval::answer_matches(" 4821", "48213"));
  EXPECT_FALSE(eval::answer_matches(" 482130", "48213"));
  EXPECT_FALSE(eval::answer_matches(" the key 48213", "48213"));
  std::mt19937_64 random(7);
  for (int i = 0; i < 100; ++i) {
    const std::string key = eval::random_passkey(random);
    ASSERT_EQ(key.size(), 5u);
    ASSERT_NE(key[0], '0');
  }
}

TEST(PasskeyScoring, EffectiveWindowIsTheLargestDistanceWithEverySmallerOneAtTwentyPercent) {
  const auto result = [](int64_t distance, int successes) {
    eval::PasskeyResult r;
    r.requested = r.distance = distance;
    r.trials = 10;
    r.successes = successes;
    return r;
  };
  EXPECT_EQ(eval::effective_context_window(
                {result(1024, 1), result(256, 10), result(512, 2), result(2048, 9)}),
            512);
  EXPECT_EQ(eval::effective_context_window({result(256, 1)}), 0);
  EXPECT_EQ(eval::effective_context_window({result(256, 2), result(512, 5)}), 512);
}

}  // namespace
}  // namespace lctrain
