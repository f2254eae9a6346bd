#include "eval/passkey.h"

#include <algorithm>
#include <cctype>

#include "model/generate.h"
#include "util/error.h"

namespace lctrain::eval {
namespace {

constexpr const char* kInstruction =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
    "them. I will quiz you about the important information there.";
constexpr const char* kFiller =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
constexpr const char* kQuestion = "What is the pass key? The pass key is";

std::vector<int64_t> repeated(const std::vector<int64_t>& piece, int64_t times) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), piece.begin(), piece.end());
  return out;
}

}  // namespace

PasskeyPrompt build_passkey_prompt(const io::Tokenizer& tokenizer, const std::string& key,
                                   int64_t distance) {
  // Pieces are encoded one by one (SentencePiece's dummy prefix puts the space between them), so
  // the key's sentence starts at a known token.
  const auto instruction = tokenizer.encode(kInstruction, /*add_bos=*/true);
  const auto filler = tokenizer.encode(kFiller, false);
  const auto key_sentence = tokenizer.encode(
      "The pass key is " + key + ". Remember it. " + key + " is the pass key.", false);
  const auto question = tokenizer.encode(kQuestion, false);
  const auto fixed = static_cast<int64_t>(key_sentence.size() + question.size());
  LCTRAIN_CHECK(distance >= fixed,
                "passkey distance {} is shorter than the key sentence and question ({} tokens)",
                distance, fixed);
  const int64_t after = (distance - fixed) / static_cast<int64_t>(filler.size());

  PasskeyPrompt prompt;
  prompt.key = key;
  prompt.tokens = instruction;
  prompt.tokens.insert(prompt.tokens.end(), filler.begin(), filler.end());
  prompt.key_position = static_cast<int64_t>(prompt.tokens.size());
  for (const auto& piece : {key_sentence, repeated(filler, after), question}) {
    prompt.tokens.insert(prompt.tokens.end(), piece.begin(), piece.end());
  }
  prompt.distance = static_cast<int64_t>(prompt.tokens.size()) - prompt.key_position;
  return prompt;
}

std::string random_passkey(std::mt19937_64& random) {
  return std::to_string(std::uniform_int_distribution<int>(10000, 99999)(random));
}

bool retrieve_passkey(LlamaModel& model, const io::Tokenizer& tokenizer,
                      const PasskeyPrompt& prompt) {
  torch::NoGradGuard no_grad;
  GenerateOptions options;
  options.max_new_tokens = static_cast<int64_t>(prompt.key.size()) + 3;
  return answer_matches(tokenizer.decode(greedy_generate(model, prompt.tokens, options)),
                        prompt.key);
}

bool answer_matches(const std::string& answer, const std::string& key) {
  std::string digits;
  for (const char c : answer) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      digits += c;
    } else if (!digits.empty() || !std::isspace(static_cast<unsigned char>(c))) {
      break;  // the answer is the first run of digits, right after the prompt
    }
  }
  return digits == key;
}

int64_t effective_context_window(std::vector<PasskeyResult> results, double threshold) {
  std::sort(results.begin(), results.end(),
            [](const PasskeyResult& a, const PasskeyResult& b) { return a.distance < b.distance; });
  int64_t window = 0;
  for (const PasskeyResult& result : results) {
    if (result.accuracy() < threshold) break;
    window = result.distance;
  }
  return window;
}

}  // namespace lctrain::eval
