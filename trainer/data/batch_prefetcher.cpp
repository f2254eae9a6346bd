#include "data/batch_prefetcher.h"

#include "util/error.h"

namespace lctrain {

int64_t BatchPlan::first_sequence_of(int64_t k) const {
  const int64_t step = k / accumulation;
  const int64_t micro = k % accumulation;
  return start_sequence + step * global_batch() + (micro * world + rank) * micro_batch;
}

BatchPrefetcher::BatchPrefetcher(const TokenSequences& data, BatchPlan plan, int depth)
    : data_(data), plan_(plan), depth_(static_cast<size_t>(std::max(depth, 1))) {
  LCTRAIN_CHECK(plan_.micro_batch > 0 && plan_.accumulation > 0 && plan_.world > 0 &&
                    plan_.rank >= 0 && plan_.rank < plan_.world && plan_.start_sequence >= 0,
                "batch plan: micro batch {}, accumulation {}, rank {} of {}, start {} is invalid",
                plan_.micro_batch, plan_.accumulation, plan_.rank, plan_.world,
                plan_.start_sequence);
  reader_ = std::thread([this] { run(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  reader_.join();
}

void BatchPrefetcher::run() {
  // Batches are plain host tensors built with no autograd; the reader needs no torch state.
  for (int64_t k = 0;; ++k) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || ready_.size() < depth_; });
      if (stopping_) return;
    }
    std::pair<torch::Tensor, torch::Tensor> batch;
    try {
      batch = data_.batch(plan_.first_sequence_of(k), plan_.micro_batch);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      changed_.notify_all();
      return;
    }
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      ready_.push_back(std::move(batch));
    }
    changed_.notify_all();
  }
}

std::pair<torch::Tensor, torch::Tensor> BatchPrefetcher::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || error_ != nullptr; });
  // Batches read before an error are still served in order; the error comes when they run out.
  if (ready_.empty()) std::rethrow_exception(error_);
  auto batch = std::move(ready_.front());
  ready_.pop_front();
  lock.unlock();
  changed_.notify_all();
  return batch;
}

}  // namespace lctrain
