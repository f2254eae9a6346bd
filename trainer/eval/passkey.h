// Passkey retrieval (Mohtashami & Jaggi 2023), as the Position Interpolation paper runs it
// (section 3.4): a 5-digit key hidden in repeated filler text, k tokens from the end of the prompt,
// and greedy decoding after "The pass key is". The effective context window is the largest k at
// which retrieval succeeds in at least 20% of trials, for that k and every smaller one.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "model/llama_model.h"

namespace lctrain::eval {

struct PasskeyPrompt {
  std::vector<int64_t> tokens;
  std::string key;
  int64_t key_position = 0;  // index of the first token of the key's sentence
  int64_t distance = 0;  // tokens from the key's sentence to the end (tokens.size() - key_position)
};

// The paper's prompt with the key sentence as close to `distance` tokens from the end as whole
// filler repetitions allow (never further). The instruction and at least one filler come first.
PasskeyPrompt build_passkey_prompt(const io::Tokenizer& tokenizer, const std::string& key,
                                   int64_t distance);

// A random 5-digit key (10000-99999).
std::string random_passkey(std::mt19937_64& random);

// Whether a decoded continuation answers `key`: its first run of digits (after spaces) is the key.
bool answer_matches(const std::string& answer, const std::string& key);

// Greedy decoding of a few tokens after the prompt, checked with answer_matches().
bool retrieve_passkey(LlamaModel& model, const io::Tokenizer& tokenizer,
                      const PasskeyPrompt& prompt);

struct PasskeyResult {
  int64_t requested = 0;  // k asked for
  int64_t distance = 0;   // k the prompts had
  int64_t prompt_tokens = 0;
  int trials = 0;
  int successes = 0;
  double accuracy() const { return trials > 0 ? static_cast<double>(successes) / trials : 0.0; }
};

// Largest k with accuracy >= threshold there and at every smaller k (results in any order);
// 0 when even the smallest fails.
int64_t effective_context_window(std::vector<PasskeyResult> results, double threshold = 0.2);

}  // namespace lctrain::eval
