#include "eval/sliding_window.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "util/error.h"

namespace lctrain::eval {

std::vector<Window> sliding_windows(int64_t length, int64_t context, int64_t stride) {
  LCTRAIN_CHECK(context > 1, "the evaluation window must hold at least 2 tokens, got {}", context);
  // A window predicts its first token from nothing, so consecutive windows must overlap.
  LCTRAIN_CHECK(stride > 0 && stride < context,
                "the stride must be in [1, window - 1], got {} for a window of {}", stride,
                context);
  std::vector<Window> windows;
  if (length < 2) return windows;  // nothing to predict
  int64_t scored_to = 1;           // the first token has no prediction
  for (int64_t end = std::min(context, length);; end = std::min(end + stride, length)) {
    windows.push_back({std::max<int64_t>(0, end - context), end, scored_to});
    scored_to = end;
    if (end == length) break;
  }
  return windows;
}

double Score::perplexity() const {
  return tokens > 0 ? std::exp(nll_sum / static_cast<double>(tokens))
                    : std::numeric_limits<double>::quiet_NaN();
}

Score& Score::operator+=(const Score& other) {
  nll_sum += other.nll_sum;
  tokens += other.tokens;
  return *this;
}

namespace {

// -log p summed over the scored positions of windows that all have the same length.
double score_batch(LlamaModel& model, const std::vector<int64_t>& tokens,
                   const std::vector<Window>& batch) {
  const int64_t width = batch.front().end - batch.front().begin;
  auto ids = torch::empty({static_cast<int64_t>(batch.size()), width}, torch::kInt64);
  for (size_t row = 0; row < batch.size(); ++row) {
    std::copy_n(tokens.begin() + batch[row].begin, width,
                ids[static_cast<int64_t>(row)].data_ptr<int64_t>());
  }
  const torch::Tensor hidden = model.hidden_states(ids);
  double nll = 0.0;
  for (size_t row = 0; row < batch.size(); ++row) {
    const Window& window = batch[row];
    // Position p predicts token begin + p + 1.
    const int64_t first = window.score_from - window.begin - 1;
    const int64_t count = window.end - window.score_from;
    const auto states = hidden[static_cast<int64_t>(row)].narrow(0, first, count);
    const auto log_probs = torch::log_softmax(model.logits(states).to(torch::kFloat32), -1);
    const auto targets = ids[static_cast<int64_t>(row)]
                             .narrow(0, first + 1, count)
                             .to(log_probs.device())
                             .unsqueeze(1);
    nll -= log_probs.gather(1, targets).to(torch::kFloat64).sum().item<double>();
  }
  return nll;
}

}  // namespace

Score score_document(LlamaModel& model, const std::vector<int64_t>& tokens,
                     const SlidingWindowOptions& options) {
  torch::NoGradGuard no_grad;
  const std::vector<Window> windows =
      sliding_windows(static_cast<int64_t>(tokens.size()), options.context, options.stride);
  Score score;
  size_t next = 0;
  while (next < windows.size()) {
    const int64_t width = windows[next].end - windows[next].begin;
    const auto per_batch = static_cast<size_t>(std::max<int64_t>(1, options.batch_tokens / width));
    std::vector<Window> batch;
    while (next < windows.size() && batch.size() < per_batch &&
           windows[next].end - windows[next].begin == width) {
      batch.push_back(windows[next++]);
    }
    score.nll_sum += score_batch(model, tokens, batch);
    for (const Window& window : batch) score.tokens += window.end - window.score_from;
  }
  return score;
}

}  // namespace lctrain::eval
