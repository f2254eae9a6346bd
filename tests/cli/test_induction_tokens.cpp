// scripts/make_induction_tokens.py, the stage-1 pretraining data of the bundled tiny model: a
// uint32 stream of BOS + a random run written N times, ids inside the vocabulary and above the
// special ones, exactly the requested length, and the same stream for the same seed.
#include <gtest/gtest.h>

#include <cstring>

#include "support/test_support.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::quoted;

testing::CommandResult make_tokens(const fs::path& output, const std::string& flags) {
  return testing::run_command(
      quoted(testing::source_dir() / "scripts" / "make_induction_tokens.py") + " " +
      quoted(output) + " " + flags);
}

std::vector<uint32_t> read_ids(const fs::path& path) {
  const std::string bytes = testing::read_text(path);
  std::vector<uint32_t> ids(bytes.size() / 4);
  std::memcpy(ids.data(), bytes.data(), ids.size() * 4);  // little-endian, as this host
  return ids;
}

TEST(InductionTokens, EveryRunIsWrittenThreeTimesAfterABos) {
  testing::ScratchDir scratch;
  const auto result = make_tokens(scratch / "a.bin",
                                  "--vocab-size 50 --tokens 5000 --min-run 4 --max-run 9 --seed 3");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(fs::file_size(scratch / "a.bin"), 5000u * 4u);
  const auto ids = read_ids(scratch / "a.bin");
  ASSERT_EQ(ids.front(), 1u);

  std::vector<size_t> starts;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == 1u) {
      starts.push_back(i);
    } else {
      ASSERT_GE(ids[i], 3u) << "special id at " << i;
      ASSERT_LT(ids[i], 50u) << "id outside the vocabulary at " << i;
    }
  }
  ASSERT_GT(starts.size(), 100u);
  for (size_t s = 0; s + 1 < starts.size(); ++s) {  // the last segment may be cut short
    const size_t length = starts[s + 1] - starts[s] - 1;
    ASSERT_EQ(length % 3, 0u) << "segment " << s;
    const size_t run = length / 3;
    ASSERT_GE(run, 4u);
    ASSERT_LE(run, 9u);
    for (size_t k = 0; k < 2 * run; ++k) {
      ASSERT_EQ(ids[starts[s] + 1 + run + k], ids[starts[s] + 1 + k]) << "segment " << s;
    }
  }

  ASSERT_EQ(make_tokens(scratch / "b.bin",
                        "--vocab-size 50 --tokens 5000 --min-run 4 --max-run 9 --seed 3")
                .exit_code,
            0);
  EXPECT_EQ(read_ids(scratch / "b.bin"), ids);
  ASSERT_EQ(make_tokens(scratch / "c.bin",
                        "--vocab-size 50 --tokens 5000 --min-run 4 --max-run 9 --seed 4")
                .exit_code,
            0);
  EXPECT_NE(read_ids(scratch / "c.bin"), ids);
}

TEST(InductionTokens, ImpossibleSettingsAreRefusedByName) {
  testing::ScratchDir scratch;
  const auto low_vocab = make_tokens(scratch / "x.bin", "--vocab-size 3");
  EXPECT_NE(low_vocab.exit_code, 0);
  EXPECT_TRUE(contains(low_vocab.output, "--first-id")) << low_vocab.output;
  const auto runs = make_tokens(scratch / "x.bin", "--vocab-size 100 --min-run 9 --max-run 4");
  EXPECT_NE(runs.exit_code, 0);
  EXPECT_TRUE(contains(runs.output, "--min-run")) << runs.output;
  EXPECT_FALSE(fs::exists(scratch / "x.bin"));
}

}  // namespace
}  // namespace lctrain
