// Fuzz tests for the safetensors reader: truncated, byte-corrupted and JSON-mutated files must be
// either read consistently or rejected with lctrain::Error, never crash or throw anything else.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "support/test_support.h"
#include "util/error.h"

namespace {

namespace fs = std::filesystem;
using lctrain::io::SafetensorsFile;
using lctrain::testing::read_text;
using lctrain::testing::ScratchDir;

struct Outcome {
  int accepted = 0;
  int rejected = 0;
};

// A small valid file with several dtypes, a scalar, a zero-size tensor and metadata.
std::string valid_file(const ScratchDir& scratch) {
  const fs::path path = scratch / "valid.safetensors";
  lctrain::io::write_safetensors(path,
                                 {{"w", torch::randn({2, 3})},
                                  {"b", torch::randn({4}).to(torch::kBFloat16)},
                                  {"s", torch::tensor(int64_t{42})},
                                  {"z", torch::empty({0, 2}, torch::kUInt8)},
                                  {"m", torch::tensor({true, false, true})}},
                                 {{"format", "pt"}});
  return read_text(path);
}

uint64_t header_length(const std::string& file) {
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<uint8_t>(file[i]);
  return length;
}

std::string le64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
  return bytes;
}

// Rewrites the file in place. Not write_text: on ext4, truncating to zero and rewriting forces a
// flush on close (auto_da_alloc), which made thousands of cases take seconds.
void overwrite(const fs::path& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  const bool written =
      ::pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()) &&
      ::ftruncate(fd, static_cast<off_t>(bytes.size())) == 0;
  ::close(fd);
  ASSERT_TRUE(written) << path;
}

// Opens `bytes` as a file and reads every tensor; anything but success or lctrain::Error fails.
void check(const fs::path& path, const std::string& bytes, const std::string& label,
           Outcome& outcome) {
  overwrite(path, bytes);
  try {
    const SafetensorsFile file = SafetensorsFile::open(path);
    for (const std::string& name : file.names()) {
      const auto& info = file.info(name);
      const torch::Tensor tensor = file.tensor(name);
      ASSERT_EQ(tensor.numel() * tensor.element_size(), static_cast<int64_t>(info.end - info.begin))
          << label;
      ASSERT_LE(info.end, bytes.size()) << label;
    }
    ++outcome.accepted;
  } catch (const lctrain::Error&) {
    ++outcome.rejected;
  } catch (const std::exception& error) {
    ADD_FAILURE() << label << ": exception other than lctrain::Error: " << error.what();
  } catch (...) {
    ADD_FAILURE() << label << ": non-std exception";
  }
}

TEST(SafetensorsFuzz, EveryTruncationIsRejected) {
  const ScratchDir scratch;
  const std::string valid = valid_file(scratch);
  Outcome outcome;
  check(scratch / "case.safetensors", valid, "untruncated", outcome);
  ASSERT_EQ(outcome.accepted, 1);
  for (size_t length = 0; length < valid.size(); ++length) {
    check(scratch / "case.safetensors", valid.substr(0, length),
          "truncated to " + std::to_string(length), outcome);
  }
  EXPECT_EQ(outcome.accepted, 1);
  EXPECT_EQ(outcome.rejected, static_cast<int>(valid.size()));
}

TEST(SafetensorsFuzz, RandomByteCorruptions) {
  const ScratchDir scratch;
  const std::string valid = valid_file(scratch);
  const size_t header_end = 8 + header_length(valid);
  const std::string interesting = "{}[],:\"0123456789-.eE \\\xff";
  std::mt19937 random(20240611);
  Outcome outcome;
  for (int round = 0; round < 4000; ++round) {
    std::string bytes = valid;
    const int changes = 1 + static_cast<int>(random() % 4);
    for (int change = 0; change < changes; ++change) {
      // Three in four changes hit the length field or the header, where the parsing is.
      const size_t limit = random() % 4 != 0 ? header_end : bytes.size();
      const size_t position = random() % limit;
      bytes[position] = random() % 2 == 0 ? static_cast<char>(random() % 256)
                                          : interesting[random() % interesting.size()];
    }
    check(scratch / "case.safetensors", bytes, "corruption round " + std::to_string(round),
          outcome);
  }
  EXPECT_GT(outcome.rejected, 0);
  EXPECT_GT(outcome.accepted, 0);  // data-only corruptions still read
}

// Splits the header into tokens: strings (with quotes), numbers, or single characters.
std::vector<std::string> tokenize(const std::string& text) {
  std::vector<std::string> tokens;
  for (size_t i = 0; i < text.size();) {
    size_t end = i + 1;
    if (text[i] == '"') {
      const size_t close = text.find('"', i + 1);
      end = close == std::string::npos ? text.size() : close + 1;
    } else if (std::isdigit(static_cast<unsigned char>(text[i]))) {
      while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
    }
    tokens.push_back(text.substr(i, end - i));
    i = end;
  }
  return tokens;
}

TEST(SafetensorsFuzz, JsonHeaderMutations) {
  const ScratchDir scratch;
  const std::string valid = valid_file(scratch);
  const size_t header_end = 8 + header_length(valid);
  const std::string header = valid.substr(8, header_end - 8);
  const std::string data = valid.substr(header_end);
  const std::vector<std::string> tokens = tokenize(header);
  const std::vector<std::string> values = {"18446744073709551615",
                                           "18446744073709551616",
                                           "9223372036854775807",
                                           "4294967296",
                                           "-9223372036854775808",
                                           "-1",
                                           "-0",
                                           "0",
                                           "1",
                                           "0.5",
                                           "1.0",
                                           "1e300",
                                           "1e999",
                                           "[]",
                                           "[[1]]",
                                           "[[0,8],[8]]",
                                           "{}",
                                           "null",
                                           "true",
                                           "\"8\"",
                                           "\"\"",
                                           "[0,18446744073709551615]",
                                           "[18446744073709551615,18446744073709551615]",
                                           "[4294967296,4294967296,4294967296]"};
  const std::vector<std::string> strings = {
      "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"",
      "\"F32\"",   "\"BF16\"",  "\"BOOL\"",         "\"F8_E4M3\"",
      "\"w\"",     "\"\""};
  std::mt19937 random(7);
  Outcome outcome;
  for (int round = 0; round < 3000; ++round) {
    std::vector<std::string> mutated = tokens;
    const int changes = 1 + static_cast<int>(random() % 3);
    for (int change = 0; change < changes; ++change) {
      std::string& token = mutated[random() % mutated.size()];
      switch (random() % 5) {
        case 0:  // a number or punctuation becomes an odd value
          token = values[random() % values.size()];
          break;
        case 1:  // a key or dtype becomes another one
          if (!token.empty() && token.front() == '"') token = strings[random() % strings.size()];
          break;
        case 2:  // two tokens swap places
          std::swap(token, mutated[random() % mutated.size()]);
          break;
        case 3:  // a token disappears
          token.clear();
          break;
        default:  // a digit run changes value slightly (shifts offsets, sizes)
          if (!token.empty() && token.size() < 19 &&
              std::isdigit(static_cast<unsigned char>(token.front()))) {
            token = std::to_string(std::stoull(token) + (random() % 9) - 4);
          }
          break;
      }
    }
    std::string text;
    for (const std::string& token : mutated) text += token;
    // Keep the length field consistent so the mutation reaches the JSON checks.
    const std::string buffer =
        random() % 8 == 0 ? data.substr(0, random() % (data.size() + 1)) : data;
    check(scratch / "case.safetensors", le64(text.size()) + text + buffer,
          "mutation round " + std::to_string(round) + ": " + text, outcome);
  }
  EXPECT_GT(outcome.rejected, 0);
}

TEST(SafetensorsFuzz, RandomLengthFieldsNeverOverRead) {
  const ScratchDir scratch;
  const std::string valid = valid_file(scratch);
  std::mt19937_64 random(99);
  Outcome outcome;
  const std::vector<uint64_t> lengths = {0,
                                         1,
                                         7,
                                         8,
                                         99'999'999,
                                         100'000'000,
                                         100'000'001,
                                         UINT64_MAX,
                                         UINT64_MAX - 7,
                                         uint64_t{1} << 63};
  for (const uint64_t length : lengths) {
    check(scratch / "case.safetensors", le64(length) + valid.substr(8), std::to_string(length),
          outcome);
  }
  for (int round = 0; round < 500; ++round) {
    const uint64_t length = random() % (valid.size() * 2);
    check(scratch / "case.safetensors", le64(length) + valid.substr(8), std::to_string(length),
          outcome);
  }
  EXPECT_GT(outcome.rejected, 0);
}

TEST(SafetensorsFuzz, DeeplyNestedHeadersDoNotExhaustTheStack) {
  const ScratchDir scratch;
  // nlohmann's dump() recurses per level and overflows an 8 MB stack below 100k levels; parsing
  // and destruction are iterative. Error messages must therefore never dump such values.
  constexpr size_t kDepth = 200'000;
  const std::string arrays = std::string(kDepth, '[') + std::string(kDepth, ']');
  std::string objects;
  for (size_t i = 0; i < kDepth / 4; ++i) objects += "{\"a\":";
  objects += "1" + std::string(kDepth / 4, '}');
  const std::vector<std::string> headers = {
      arrays,
      std::string(kDepth, '['),
      "{\"w\":" + arrays + "}",
      "{\"w\":" + objects + "}",
      "{\"__metadata__\":{\"k\":" + arrays + "}}",
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[" + arrays + "],\"data_offsets\":[0,0]}}",
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":" + arrays + "}}"};
  Outcome outcome;
  for (size_t i = 0; i < headers.size(); ++i) {
    check(scratch / "case.safetensors", le64(headers[i].size()) + headers[i],
          "nested header " + std::to_string(i), outcome);
  }
  EXPECT_EQ(outcome.rejected, static_cast<int>(headers.size()));
}

}  // namespace
