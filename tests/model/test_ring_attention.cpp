// Ring attention over a sequence split zigzag-wise across C ranks (simulated by C threads passing
// tensors through mailboxes) equals causal attention over the whole sequence: each rank's outputs
// and the gradients of its queries, keys and values, for C = 1..4, grouped-query heads, blocks
// smaller than a chunk, and bf16 inputs. The zigzag layout and its refusals are checked too.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "model/ring_attention.h"
#include "support/error_expectations.h"
#include "util/torch_compat.h"

namespace lctrain {
namespace {

// C mailboxes; position p's pass() posts to p + 1's and takes the next tensor from its own.
class ThreadRings {
 public:
  explicit ThreadRings(int64_t size) : mailboxes_(static_cast<size_t>(size)) {}

  class Ring final : public KeyValueRing {
   public:
    Ring(ThreadRings& rings, int64_t position) : rings_(rings), position_(position) {}
    int64_t size() const override { return static_cast<int64_t>(rings_.mailboxes_.size()); }
    int64_t position() const override { return position_; }
    std::function<torch::Tensor()> pass(const torch::Tensor& outgoing) override {
      ++rings_.passes_;
      rings_.post((position_ + 1) % size(), outgoing.clone());
      return [this] { return rings_.take(position_); };
    }

   private:
    ThreadRings& rings_;
    int64_t position_;
  };

  int64_t passes() const { return passes_; }

 private:
  void post(int64_t to, torch::Tensor tensor) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      mailboxes_[static_cast<size_t>(to)].push_back(std::move(tensor));
    }
    changed_.notify_all();
  }
  torch::Tensor take(int64_t at) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto& mailbox = mailboxes_[static_cast<size_t>(at)];
    changed_.wait(lock, [&] { return !mailbox.empty(); });
    torch::Tensor tensor = std::move(mailbox.front());
    mailbox.pop_front();
    return tensor;
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::deque<torch::Tensor>> mailboxes_;
  std::atomic<int64_t> passes_{0};
};

torch::Tensor repeat_heads(const torch::Tensor& x, int64_t groups) {
  return x.repeat_interleave(groups, 1);
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v) {
  const int64_t groups = q.size(1) / k.size(1);
  return compat::scaled_dot_product_attention(q, repeat_heads(k, groups), repeat_heads(v, groups),
                                              std::nullopt, true);
}

struct RankResult {
  torch::Tensor output, query_grad, key_grad, value_grad;
};

// Every rank's output and gradients of sum(output * upstream) over its share.
std::vector<RankResult> run_ring(int64_t ring_size, const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, const torch::Tensor& upstream,
                                 int64_t block) {
  ThreadRings rings(ring_size);
  std::vector<RankResult> results(static_cast<size_t>(ring_size));
  std::vector<std::string> errors(static_cast<size_t>(ring_size));
  std::vector<std::thread> threads;
  for (int64_t position = 0; position < ring_size; ++position) {
    threads.emplace_back([&, position] {
      try {
        ThreadRings::Ring ring(rings, position);
        const ZigzagLayout layout(ring_size, position, q.size(2));
        const auto share = [&](const torch::Tensor& t) {
          return layout.take(t.detach(), 2).requires_grad_(t.requires_grad());
        };
        const torch::Tensor q_share = share(q), k_share = share(k), v_share = share(v);
        const torch::Tensor output = ring_causal_attention(q_share, k_share, v_share, ring, block);
        (output.to(torch::kFloat32) * layout.take(upstream, 2)).sum().backward();
        results[static_cast<size_t>(position)] = {output.detach(), q_share.grad(), k_share.grad(),
                                                  v_share.grad()};
      } catch (const std::exception& error) {
        errors[static_cast<size_t>(position)] = error.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& error : errors) EXPECT_EQ(error, "");
  return results;
}

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double tolerance,
                  const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what;
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double error = (actual.to(torch::kFloat32) - expected).abs().max().item<double>();
  EXPECT_LE(error, tolerance * (1.0 + expected.abs().max().item<double>())) << what;
}

TEST(RingAttention, EqualsCausalAttentionOverTheWholeSequenceWithGradients) {
  torch::manual_seed(3);
  for (const int64_t ring_size : {1, 2, 3, 4}) {
    for (const int64_t chunk : {1, 5}) {
      for (const int64_t block : {2, 512}) {
        SCOPED_TRACE(fmt::format("C {} chunk {} block {}", ring_size, chunk, block));
        const int64_t length = 2 * ring_size * chunk;
        // 4 query heads over 2 key/value heads (grouped-query attention).
        const auto q = torch::randn({2, 4, length, 8}).requires_grad_(true);
        const auto k = (torch::randn({2, 2, length, 8}) * 2).requires_grad_(true);
        const auto v = torch::randn({2, 2, length, 8}).requires_grad_(true);
        const auto upstream = torch::randn({2, 4, length, 8});
        const auto expected = causal_attention(q, k, v);
        const auto grads = torch::autograd::grad({expected}, {q, k, v}, {upstream});
        const auto results = run_ring(ring_size, q, k, v, upstream, block);
        for (int64_t position = 0; position < ring_size; ++position) {
          const ZigzagLayout layout(ring_size, position, length);
          const RankResult& rank = results[static_cast<size_t>(position)];
          const std::string where = fmt::format("rank {}", position);
          expect_close(rank.output, layout.take(expected.detach(), 2), 1e-5, where + " output");
          expect_close(rank.query_grad, layout.take(grads[0], 2), 1e-5, where + " dq");
          expect_close(rank.key_grad, layout.take(grads[1], 2), 1e-5, where + " dk");
          expect_close(rank.value_grad, layout.take(grads[2], 2), 1e-5, where + " dv");
        }
      }
    }
  }
}

TEST(RingAttention, KeysAndValuesTravelTheRingAndGradientsComeHome) {
  // Forward: C - 1 passes per rank; backward: C - 1 for keys and values, C for their gradients.
  const int64_t ring_size = 3;
  ThreadRings rings(ring_size);
  std::vector<std::thread> threads;
  for (int64_t position = 0; position < ring_size; ++position) {
    threads.emplace_back([&, position] {
      ThreadRings::Ring ring(rings, position);
      const auto q = torch::randn({1, 2, 6, 4}).requires_grad_(true);
      const auto k = torch::randn({1, 1, 6, 4}).requires_grad_(true);
      const auto v = torch::randn({1, 1, 6, 4}).requires_grad_(true);
      ring_causal_attention(q, k, v, ring).sum().backward();
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(rings.passes(), ring_size * ((ring_size - 1) + (ring_size - 1) + ring_size));
}

TEST(RingAttention, Bfloat16InputsGiveBfloat16OutputsAndGradients) {
  torch::manual_seed(4);
  const auto q = torch::randn({1, 2, 16, 8}).to(torch::kBFloat16).requires_grad_(true);
  const auto k = torch::randn({1, 2, 16, 8}).to(torch::kBFloat16).requires_grad_(true);
  const auto v = torch::randn({1, 2, 16, 8}).to(torch::kBFloat16).requires_grad_(true);
  const auto upstream = torch::randn({1, 2, 16, 8});
  const auto results = run_ring(2, q, k, v, upstream, 4);
  const auto reference =
      causal_attention(q.detach().to(torch::kFloat32), k.detach().to(torch::kFloat32),
                       v.detach().to(torch::kFloat32));
  for (int64_t position = 0; position < 2; ++position) {
    const RankResult& rank = results[static_cast<size_t>(position)];
    EXPECT_EQ(rank.output.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(rank.key_grad.scalar_type(), torch::kBFloat16);
    expect_close(rank.output, ZigzagLayout(2, position, 16).take(reference, 2), 2e-2, "output");
  }
}

TEST(ZigzagLayout, RankIHoldsChunksIAndTwoCMinusOneMinusI) {
  const auto sequence = torch::arange(16).view({1, 16});
  EXPECT_TRUE(torch::equal(ZigzagLayout(4, 0, 16).take(sequence, 1),
                           torch::tensor({0, 1, 14, 15}).view({1, 4})));
  EXPECT_TRUE(torch::equal(ZigzagLayout(4, 2, 16).take(sequence, 1),
                           torch::tensor({4, 5, 10, 11}).view({1, 4})));
  // Every token is held exactly once across the ring.
  std::vector<torch::Tensor> shares;
  for (int64_t position = 0; position < 4; ++position) {
    shares.push_back(ZigzagLayout(4, position, 16).take(sequence, 1));
  }
  EXPECT_TRUE(torch::equal(std::get<0>(torch::cat(shares, 1).sort(1)), sequence));
}

TEST(ZigzagLayout, RefusesASequenceThatDoesNotCutIntoTwoCChunks) {
  testing::expect_contains(testing::error_message_of([] { ZigzagLayout(3, 0, 16); }),
                           {"cuts a sequence into 6 equal chunks: 16 tokens"});
}

}  // namespace
}  // namespace lctrain
