// Sliding-window perplexity: every token after the first is scored exactly once, with the context
// the protocol promises, and the score equals a direct token-by-token computation on a tiny model.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/sliding_window.h"
#include "io/hf_model_dir.h"
#include "support/error_expectations.h"
#include "support/test_support.h"

namespace lctrain {
namespace {

TEST(SlidingWindows, EveryTokenIsScoredOnceWithAtLeastWindowMinusStrideContext) {
  for (const int64_t length : {2, 5, 16, 17, 100, 257}) {
    for (const auto& [context, stride] : std::vector<std::pair<int64_t, int64_t>>{
             {2, 1}, {8, 3}, {16, 15}, {16, 4}, {64, 64 - 1}, {300, 256}}) {
      SCOPED_TRACE(fmt::format("length {} window {} stride {}", length, context, stride));
      std::vector<int> scored(static_cast<size_t>(length), 0);
      for (const eval::Window& window : eval::sliding_windows(length, context, stride)) {
        ASSERT_LE(window.end - window.begin, context);
        ASSERT_GT(window.score_from, window.begin) << "a scored token needs context in its window";
        for (int64_t t = window.score_from; t < window.end; ++t) {
          ++scored[static_cast<size_t>(t)];
          EXPECT_GE(t - window.begin, std::min(t, context - stride)) << "token " << t;
        }
      }
      EXPECT_EQ(scored[0], 0);
      for (int64_t t = 1; t < length; ++t) EXPECT_EQ(scored[static_cast<size_t>(t)], 1) << t;
    }
  }
  testing::expect_contains(testing::error_message_of([] { eval::sliding_windows(100, 256, 256); }),
                           {"stride", "256"});
}

// -log p(token t) computed the slow way: one forward pass per token over the window the protocol
// gives it (ends at C, C + S, C + 2S, ... capped at the document's end; C tokens long).
double direct_nll(LlamaModel& model, const std::vector<int64_t>& doc, int64_t context,
                  int64_t stride) {
  const auto n = static_cast<int64_t>(doc.size());
  double nll = 0.0;
  for (int64_t t = 1; t < n; ++t) {
    const int64_t k = t + 1 <= context ? 0 : (t + 1 - context + stride - 1) / stride;
    const int64_t end = std::min(context + k * stride, n);
    const int64_t begin = std::max<int64_t>(0, end - context);
    const auto ids =
        torch::tensor(std::vector<int64_t>(doc.begin() + begin, doc.begin() + end)).unsqueeze(0);
    const auto log_probs = torch::log_softmax(model.forward(ids)[0][t - begin - 1], -1);
    nll -= log_probs[doc[static_cast<size_t>(t)]].item<double>();
  }
  return nll;
}

TEST(SlidingWindowPerplexity, EqualsADirectComputationOnATinyModel) {
  torch::NoGradGuard no_grad;
  LlamaModel model =
      io::load_model(testing::fixture_dir("tiny-llama-parity"), io::ModelLoadOptions{});
  std::vector<int64_t> doc;
  for (int i = 0; i < 45; ++i) doc.push_back((i * 37 + 11) % 257);
  for (const auto& [context, stride] :
       std::vector<std::pair<int64_t, int64_t>>{{16, 5}, {16, 15}, {8, 1}, {64, 32}}) {
    SCOPED_TRACE(fmt::format("window {} stride {}", context, stride));
    const double expected = direct_nll(model, doc, context, stride);
    for (const int64_t batch_tokens : {1, 64, 100000}) {
      const eval::Score score = eval::score_document(
          model, doc, eval::SlidingWindowOptions{context, stride, batch_tokens});
      EXPECT_EQ(score.tokens, 44);
      EXPECT_NEAR(score.nll_sum, expected, 1e-6 * expected) << "batch tokens " << batch_tokens;
      EXPECT_NEAR(score.perplexity(), std::exp(expected / 44), 1e-6 * score.perplexity());
    }
  }
  // A window longer than the document is one plain forward pass: the mean cross-entropy.
  const auto ids = torch::tensor(doc).unsqueeze(0);
  const auto logits = model.forward(ids)[0];
  const double cross_entropy =
      torch::nn::functional::cross_entropy(logits.narrow(0, 0, 44), ids[0].narrow(0, 1, 44))
          .item<double>();
  const eval::Score whole = eval::score_document(model, doc, eval::SlidingWindowOptions{64, 8});
  EXPECT_NEAR(whole.nll_sum / whole.tokens, cross_entropy, 1e-6);
}

}  // namespace
}  // namespace lctrain
