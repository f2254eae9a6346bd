// BatchPrefetcher: reads a rank's next micro-batches on a background thread while the current step
// computes, in exactly the order the training loop consumes them.
//
// The order: step s's global batch is sequences [start + s*G, start + (s+1)*G) of the data order
// (G = micro_batch x accumulation x world), and micro-step m of rank r takes the micro_batch
// sequences from start + s*G + (m*world + r)*micro_batch. Ranks hold disjoint slices, every
// sequence is read once, and `start` (sequences consumed so far) is the whole resumable state.
#pragma once

#include <torch/torch.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "data/token_sequences.h"

namespace lctrain {

struct BatchPlan {
  int64_t start_sequence = 0;  // sequences consumed before this run (the checkpoint's counter)
  int64_t micro_batch = 1;
  int64_t accumulation = 1;
  int64_t rank = 0;
  int64_t world = 1;

  int64_t global_batch() const { return micro_batch * accumulation * world; }
  // First global sequence index of this rank's k-th micro-batch since `start_sequence`.
  int64_t first_sequence_of(int64_t k) const;
};

class BatchPrefetcher {
 public:
  // Keeps up to `depth` micro-batches ready. `data` must outlive the prefetcher.
  BatchPrefetcher(const TokenSequences& data, BatchPlan plan, int depth = 2);
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // The next micro-batch (inputs, targets), int64 [micro_batch, sequence_length] each. An error
  // the reader met is rethrown here.
  std::pair<torch::Tensor, torch::Tensor> next();

 private:
  void run();

  const TokenSequences& data_;
  const BatchPlan plan_;
  const size_t depth_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::pair<torch::Tensor, torch::Tensor>> ready_;
  std::exception_ptr error_;
  bool stopping_ = false;
  std::thread reader_;
};

}  // namespace lctrain
