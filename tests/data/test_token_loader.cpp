// The training loader: memory-mapped shards read as one stream, a seeded order that visits every
// window once per epoch, disjoint per-rank slices, resume from a counter with any world size, and
// out-of-vocabulary data refused with its position.
#include <gtest/gtest.h>

#include <numeric>
#include <set>

#include "data/batch_prefetcher.h"
#include "data/token_sequences.h"
#include "data/token_shards.h"
#include "support/error_expectations.h"
#include "support/test_support.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

// Writes `tokens` as shards of `per_shard` tokens plus the manifest prepare-data writes.
void write_shards(const fs::path& dir, const std::vector<int64_t>& tokens, int64_t per_shard,
                  int bytes_per_token, int64_t vocab_size) {
  data::TokenShardWriter writer(dir, bytes_per_token, per_shard);
  writer.append(tokens);
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& [name, count] : writer.finish()) {
    shards.push_back({{"name", name}, {"tokens", count}});
  }
  testing::write_text(dir / "manifest.json", nlohmann::json{{"format", "lctrain-token-shards"},
                                                            {"vocab_size", vocab_size},
                                                            {"shards", shards}}
                                                 .dump());
}

std::vector<int64_t> counting(int64_t n, int64_t modulo) {
  std::vector<int64_t> tokens(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tokens[static_cast<size_t>(i)] = i % modulo;
  return tokens;
}

// The window (start token / L) each row of a batch holds, read back from its first token.
std::vector<int64_t> windows_of(const torch::Tensor& inputs, int64_t sequence_length) {
  std::vector<int64_t> windows;
  for (int64_t row = 0; row < inputs.size(0); ++row) {
    windows.push_back(inputs[row][0].item<int64_t>() / sequence_length);
  }
  return windows;
}

TEST(TokenStream, MappedShardsReadAsOneStreamAcrossFileBoundaries) {
  ScratchDir scratch;
  const auto tokens = counting(1000, 70000);
  write_shards(scratch / "wide", tokens, 77, 4, 70000);  // 13 shards, uint32
  const TokenStream stream = TokenStream::open(scratch / "wide");
  ASSERT_EQ(stream.size(), 1000);
  std::vector<int64_t> read(300);
  stream.read(650, 300, read.data());  // spans four files
  EXPECT_TRUE(std::equal(read.begin(), read.end(), tokens.begin() + 650));
  EXPECT_EQ(stream.declared_vocab_size(), 70000);
  testing::expect_contains(testing::error_message_of([&] { stream.read(990, 11, read.data()); }),
                           {"wide", "outside its 1000 tokens"});
}

TEST(TokenSequences, EachEpochVisitsEveryWindowOnceInASeededOrder) {
  ScratchDir scratch;
  const int64_t length = 8;
  write_shards(scratch / "shards", counting(8 * 50 + 1, 1 << 16), 100, 2, 1 << 16);
  const auto data = TokenSequences::from_file(scratch / "shards", length, /*seed=*/3);
  ASSERT_EQ(data.windows_per_epoch(), 50);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    const auto [inputs, targets] = data.batch(epoch * 50, 50);
    const auto windows = windows_of(inputs, length);
    EXPECT_EQ(std::set<int64_t>(windows.begin(), windows.end()).size(), 50u) << "epoch " << epoch;
    // Targets are the inputs shifted by one token.
    EXPECT_TRUE(torch::equal(inputs.narrow(1, 1, length - 1), targets.narrow(1, 0, length - 1)));
  }
  const auto first_epoch = windows_of(data.batch(0, 50).first, length);
  const auto second_epoch = windows_of(data.batch(50, 50).first, length);
  EXPECT_NE(first_epoch, second_epoch) << "every epoch is shuffled afresh";
  // The same seed gives the same order in a fresh reader; another seed another.
  const auto again = TokenSequences::from_file(scratch / "shards", length, 3);
  EXPECT_EQ(windows_of(again.batch(0, 50).first, length), first_epoch);
  const auto other = TokenSequences::from_file(scratch / "shards", length, 4);
  EXPECT_NE(windows_of(other.batch(0, 50).first, length), first_epoch);
}

// Sequences each rank reads over `micro_batches` micro-batches from `start`.
std::vector<std::vector<int64_t>> read_by_rank(const TokenSequences& data, BatchPlan plan,
                                               int64_t micro_batches) {
  std::vector<std::vector<int64_t>> by_rank(static_cast<size_t>(plan.world));
  for (int64_t rank = 0; rank < plan.world; ++rank) {
    plan.rank = rank;
    BatchPrefetcher prefetcher(data, plan, /*depth=*/3);
    for (int64_t k = 0; k < micro_batches; ++k) {
      const auto windows = windows_of(prefetcher.next().first, data.sequence_length());
      by_rank[static_cast<size_t>(rank)].insert(by_rank[static_cast<size_t>(rank)].end(),
                                                windows.begin(), windows.end());
    }
  }
  return by_rank;
}

TEST(BatchPrefetcher, ResumeMidEpochWithAnyWorldSizeNeitherRepeatsNorSkips) {
  ScratchDir scratch;
  const int64_t length = 4;
  write_shards(scratch / "shards", counting(4 * 97 + 1, 1 << 16), 64, 2, 1 << 16);
  const auto data = TokenSequences::from_file(scratch / "shards", length, 11);
  // A straight run on one rank: 12 steps of 8 sequences (micro-batch 2, accumulation 4).
  const BatchPlan one_rank{0, 2, 4, 0, 1};
  const auto straight = read_by_rank(data, one_rank, 12 * 4)[0];
  ASSERT_EQ(straight.size(), 96u);
  EXPECT_EQ(std::set<int64_t>(straight.begin(), straight.end()).size(), 96u)
      << "96 of 97 windows: none may repeat within the epoch";

  for (const int64_t world : {1, 2}) {
    // 5 steps on one rank, then resume from the counter (40 sequences) with `world` ranks,
    // the same global batch of 8.
    std::vector<int64_t> resumed(straight.begin(), straight.begin() + 40);
    const BatchPlan after{40, 2, 4 / world, 0, world};
    const auto by_rank = read_by_rank(data, after, 7 * (4 / world));
    std::set<int64_t> rank0(by_rank[0].begin(), by_rank[0].end());
    if (world == 2) {
      for (const int64_t window : by_rank[1]) EXPECT_EQ(rank0.count(window), 0u) << "disjoint";
    }
    // Each step's global batch is the same set of sequences as the straight run's.
    for (int64_t step = 0; step < 7; ++step) {
      std::multiset<int64_t> global;
      for (const auto& mine : by_rank) {
        global.insert(mine.begin() + step * 8 / world, mine.begin() + (step + 1) * 8 / world);
      }
      const auto begin = straight.begin() + 40 + step * 8;
      EXPECT_EQ(global, std::multiset<int64_t>(begin, begin + 8))
          << "W " << world << " step " << step;
    }
  }
}

TEST(TokenSequences, TokensOutsideTheVocabularyAreRefusedWithTheirPosition) {
  ScratchDir scratch;
  auto tokens = counting(200, 50);
  tokens[123] = 999;
  testing::write_text(scratch / "ids.txt", [&] {
    std::string text;
    for (const auto id : tokens) text += std::to_string(id) + " ";
    return text;
  }());
  testing::expect_contains(testing::error_message_of(
                               [&] { TokenSequences::from_file(scratch / "ids.txt", 16, 0, 100); }),
                           {"ids.txt", "token id 999 at position 123", "vocabulary of 100"});
  // Shards made with a larger tokenizer are refused up front from their manifest.
  write_shards(scratch / "shards", counting(200, 50), 1000, 2, 32000);
  testing::expect_contains(
      testing::error_message_of([&] { TokenSequences::from_file(scratch / "shards", 16, 0, 100); }),
      {"shards", "vocabulary of 32000", "100"});
  // A manifest that lies about the vocabulary is still caught at the window that breaks it.
  tokens[123] = 60;
  write_shards(scratch / "lying", tokens, 1000, 2, 50);
  const auto data = TokenSequences::from_file(scratch / "lying", 16, 0, 50);
  BatchPrefetcher prefetcher(data, BatchPlan{0, data.windows_per_epoch(), 1, 0, 1});
  testing::expect_contains(testing::error_message_of([&] { prefetcher.next(); }),
                           {"lying", "token id 60 at position 123"});
}

}  // namespace
}  // namespace lctrain
