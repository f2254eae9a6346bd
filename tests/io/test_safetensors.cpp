// Tests for the single-file safetensors reader and writer: round trips, the exact byte layout,
// the Python-made fixture, and one crafted file per validation rule.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"
#include "support/error_expectations.h"
#include "support/test_support.h"
#include "util/error.h"

namespace {

namespace fs = std::filesystem;
using lctrain::io::SafetensorsFile;
using lctrain::io::write_safetensors;
using lctrain::testing::read_text;
using lctrain::testing::ScratchDir;
using lctrain::testing::write_text;

std::string le64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
  return bytes;
}

// A raw file: header length (the header's own unless overridden), header text, data bytes.
fs::path write_raw(const fs::path& path, const std::string& header, const std::string& data) {
  write_text(path, le64(header.size()) + header + data);
  return path;
}

std::string open_error(const fs::path& path) {
  return lctrain::testing::error_message_of([&] { SafetensorsFile::open(path); });
}

using lctrain::testing::expect_contains;

TEST(Safetensors, RoundTripsEveryDtypeScalarsEmptyTensorsAndMetadata) {
  const ScratchDir scratch;
  const std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"f32", torch::randn({2, 3})},
      {"f16", torch::randn({4}).to(torch::kFloat16)},
      {"bf16", torch::randn({3, 2}).to(torch::kBFloat16)},
      {"f64", torch::randn({2}, torch::kFloat64)},
      {"i64_scalar", torch::tensor(int64_t{-1234567890123})},
      {"i32", torch::tensor({1, -2, 3}, torch::kInt32)},
      {"i16", torch::tensor({-7, 8}, torch::kInt16)},
      {"i8", torch::tensor({-1, 1}, torch::kInt8)},
      {"u8", torch::tensor({0, 255}, torch::kUInt8)},
      {"bool", torch::tensor({true, false, true})},
      {"empty", torch::empty({0, 5})},
      {"transposed", torch::arange(6, torch::kFloat32).reshape({2, 3}).t()},
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ü ok"}};
  const fs::path path = scratch / "a.safetensors";
  write_safetensors(path, tensors, metadata);

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.metadata(), metadata);
  std::vector<std::string> expected_names;
  for (const auto& entry : tensors) expected_names.push_back(entry.first);
  std::sort(expected_names.begin(), expected_names.end());
  EXPECT_EQ(file.names(), expected_names);
  for (const auto& [name, original] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(file.contains(name));
    const torch::Tensor loaded = file.tensor(name);
    EXPECT_EQ(file.info(name).dtype, original.scalar_type());
    EXPECT_EQ(file.info(name).shape, original.sizes().vec());
    EXPECT_EQ(loaded.scalar_type(), original.scalar_type());
    EXPECT_EQ(loaded.sizes(), original.sizes());
    EXPECT_TRUE(loaded.is_contiguous());
    EXPECT_TRUE(torch::equal(loaded, original));
  }
  EXPECT_EQ(file.tensor("i64_scalar").dim(), 0);
  EXPECT_FALSE(file.contains("missing"));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
}

TEST(Safetensors, HeaderIsPaddedWithSpacesToEightBytesAndTensorsFollowGivenOrder) {
  const ScratchDir scratch;
  const fs::path path = scratch / "a.safetensors";
  write_safetensors(path, {{"zz", torch::ones({3}, torch::kUInt8)}, {"a", torch::ones({1})}});
  const std::string bytes = read_text(path);
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(length % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + length + 3 + 4);
  EXPECT_EQ(bytes.substr(8, length).find_last_not_of(' '), bytes.substr(8, length).rfind('}'));
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.info("zz").begin, 0u);
  EXPECT_EQ(file.info("zz").end, 3u);
  EXPECT_EQ(file.info("a").begin, 3u);  // unaligned on purpose: the reader must memcpy
  EXPECT_TRUE(torch::equal(file.tensor("a"), torch::ones({1})));
}

TEST(Safetensors, WriterOutputMatchesHandBuiltBytes) {
  const ScratchDir scratch;
  const fs::path path = scratch / "a.safetensors";
  write_safetensors(path, {{"b", torch::tensor({1.0F, -2.0F})}, {"a", torch::tensor(int16_t{7})}},
                    {{"k", "v"}});
  // 132 bytes of JSON + 4 spaces = 136 = 0x88; then 1.0f, -2.0f, int16 7, all little-endian.
  const std::string expected =
      std::string("\x88\0\0\0\0\0\0\0", 8) +
      R"({"__metadata__":{"k":"v"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("a":{"dtype":"I16","shape":[],"data_offsets":[8,10]}}    )" +
      std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0\x07\x00", 10);
  EXPECT_EQ(read_text(path), expected);
}

TEST(Safetensors, WritesAnEmptyTensorList) {
  const ScratchDir scratch;
  write_safetensors(scratch / "a.safetensors", {});
  EXPECT_EQ(read_text(scratch / "a.safetensors"), le64(8) + "{}      ");
  EXPECT_TRUE(SafetensorsFile::open(scratch / "a.safetensors").names().empty());
}

TEST(Safetensors, ReadsThePythonWrittenFixture) {
  const SafetensorsFile file = SafetensorsFile::open(
      lctrain::testing::fixture_dir("tiny-llama-parity") / "model.safetensors");
  EXPECT_EQ(file.names().size(), 20u);  // 21 header keys incl. __metadata__
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const auto& embed = file.info("model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, torch::kBFloat16);
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{257, 64}));
  const torch::Tensor norm = file.tensor("model.layers.0.input_layernorm.weight");
  EXPECT_EQ(norm.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(norm.sizes(), (std::vector<int64_t>{64}));
  // Values decoded from the file's bytes independently (bf16 0x3f77, 0x3f7a, 0x3f6a).
  EXPECT_FLOAT_EQ(norm[0].item<float>(), 0.96484375F);
  EXPECT_FLOAT_EQ(norm[1].item<float>(), 0.9765625F);
  EXPECT_FLOAT_EQ(norm[2].item<float>(), 0.9140625F);
  EXPECT_FLOAT_EQ(file.tensor("model.embed_tokens.weight")[0][0].item<float>(), -0.41015625F);
}

TEST(Safetensors, TensorsAreOwnedCopiesThatOutliveTheFile) {
  const ScratchDir scratch;
  const fs::path path = scratch / "a.safetensors";
  write_safetensors(path, {{"x", torch::arange(4, torch::kFloat32)}});
  torch::Tensor kept;
  {
    const SafetensorsFile file = SafetensorsFile::open(path);
    const SafetensorsFile copy = file;  // copies share the mapping
    kept = copy.tensor("x");
    kept.add_(1);
    EXPECT_TRUE(torch::equal(file.tensor("x"), torch::arange(4, torch::kFloat32)));
  }
  EXPECT_TRUE(torch::equal(kept, torch::arange(1, 5, torch::kFloat32)));
}

TEST(Safetensors, BoolBytesAreNormalised) {
  const ScratchDir scratch;
  const fs::path path = write_raw(scratch / "a.safetensors",
                                  R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                                  std::string("\0\2\1", 3));
  const torch::Tensor mask = SafetensorsFile::open(path).tensor("m");
  EXPECT_TRUE(torch::equal(mask, torch::tensor({false, true, true})));
  EXPECT_EQ(mask.sum().item<int64_t>(), 2);
}

TEST(Safetensors, InfoOfAbsentTensorNamesTensorAndFile) {
  const ScratchDir scratch;
  const fs::path path = scratch / "a.safetensors";
  write_safetensors(path, {{"x", torch::ones({1})}});
  const SafetensorsFile file = SafetensorsFile::open(path);
  try {
    file.info("nope");
    FAIL() << "expected lctrain::Error";
  } catch (const lctrain::Error& error) {
    expect_contains(error.what(), {"'nope'", path.string()});
  }
  EXPECT_THROW(file.tensor("nope"), lctrain::Error);
}

TEST(Safetensors, WriterRejectsBadNamesAndDtypesWithoutLeavingFiles) {
  const ScratchDir scratch;
  const fs::path path = scratch / "a.safetensors";
  const auto error_of = [&](const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
    try {
      write_safetensors(path, tensors);
    } catch (const lctrain::Error& error) {
      return std::string(error.what());
    }
    return std::string("<no error>");
  };
  expect_contains(error_of({{"", torch::ones({1})}}), {path.string(), "non-empty"});
  expect_contains(error_of({{"x", torch::ones({1})}, {"x", torch::ones({2})}}),
                  {path.string(), "duplicate", "'x'"});
  expect_contains(error_of({{"c", torch::ones({1}, torch::kComplexFloat)}}),
                  {path.string(), "'c'", "unsupported dtype"});
  expect_contains(error_of({{"__metadata__", torch::ones({1})}}), {"reserved"});
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
}

TEST(Safetensors, WriterReplacesAnExistingFile) {
  const ScratchDir scratch;
  const fs::path path = scratch / "a.safetensors";
  write_safetensors(path, {{"old", torch::ones({100})}});
  write_safetensors(path, {{"new", torch::zeros({2})}});
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.names(), std::vector<std::string>{"new"});
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
}

TEST(Safetensors, WriterReportsAnUnwritableFolder) {
  const ScratchDir scratch;
  const fs::path path = scratch / "no" / "such" / "a.safetensors";
  try {
    write_safetensors(path, {{"x", torch::ones({1})}});
    FAIL() << "expected lctrain::Error";
  } catch (const lctrain::Error& error) {
    expect_contains(error.what(), {path.string(), "No such file or directory"});
  }
}

TEST(Safetensors, TensorBytesCountsDataBytes) {
  EXPECT_EQ(lctrain::io::tensor_bytes(torch::ones({3, 4}, torch::kBFloat16)), 24u);
  EXPECT_EQ(lctrain::io::tensor_bytes(torch::ones({3, 4}).t()), 48u);
  EXPECT_EQ(lctrain::io::tensor_bytes(torch::ones({0, 4})), 0u);
  EXPECT_EQ(lctrain::io::tensor_bytes(torch::tensor(int64_t{1})), 8u);
}

// ---- File-level failures ----

TEST(SafetensorsValidation, RejectsMissingFileDirectoryAndUnreadableFile) {
  const ScratchDir scratch;
  expect_contains(open_error(scratch / "missing.safetensors"),
                  {(scratch / "missing.safetensors").string(), "No such file or directory"});
  expect_contains(open_error(scratch.path()), {scratch.path().string(), "Is a directory"});
  const fs::path fifo = scratch / "fifo.safetensors";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  expect_contains(open_error(fifo), {fifo.string(), "not a regular file"});  // and no hang
  if (::geteuid() != 0) {                                                    // root reads anything
    const fs::path path = scratch / "locked.safetensors";
    write_safetensors(path, {{"x", torch::ones({1})}});
    ::chmod(path.c_str(), 0);
    expect_contains(open_error(path), {path.string(), "Permission denied"});
  }
}

TEST(SafetensorsValidation, RejectsFilesShorterThanTheLengthField) {
  const ScratchDir scratch;
  write_text(scratch / "empty.safetensors", "");
  expect_contains(open_error(scratch / "empty.safetensors"),
                  {(scratch / "empty.safetensors").string(), "0 bytes", "smaller than"});
  write_text(scratch / "short.safetensors", "abcde");
  expect_contains(open_error(scratch / "short.safetensors"), {"5 bytes", "smaller than"});
}

TEST(SafetensorsValidation, RejectsBadHeaderLengths) {
  const ScratchDir scratch;
  const fs::path path = scratch / "a.safetensors";
  write_text(path, le64(0) + "{}");
  expect_contains(open_error(path), {path.string(), "header length is 0"});
  write_text(path, le64(100'000'001) + "{}");
  expect_contains(open_error(path), {path.string(), "header length 100000001", "limit"});
  write_text(path, le64(1000) + "{}");
  expect_contains(open_error(path), {path.string(), "header length 1000 beyond file size 10"});
  write_text(path, le64(UINT64_MAX) + "{}");
  expect_contains(open_error(path), {path.string(), "header length 18446744073709551615"});
}

// ---- Header content failures: one crafted header per rule ----

struct HeaderCase {
  std::string label;
  std::string header;
  std::string data;
  std::vector<std::string> expected;  // substrings of the message besides the file name
};

class HeaderValidation : public ::testing::TestWithParam<HeaderCase> {};

TEST_P(HeaderValidation, RejectsWithMessageNamingFileAndItem) {
  const ScratchDir scratch;
  const fs::path path = write_raw(scratch / "bad.safetensors", GetParam().header, GetParam().data);
  const std::string message = open_error(path);
  expect_contains(message, {path.string()});
  for (const std::string& part : GetParam().expected) expect_contains(message, {part});
}

std::string f32(const std::string& name, const std::string& shape, const std::string& offsets) {
  return "\"" + name + R"(":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":)" + offsets +
         "}";
}

const std::string k8(8, 'x');

INSTANTIATE_TEST_SUITE_P(
    Rules, HeaderValidation,
    ::testing::Values(
        HeaderCase{"NotJson", "{\"a\": ", "", {"not valid JSON"}},
        HeaderCase{"NotUtf8", "{\"\xff\":1}", "", {"not valid JSON"}},
        HeaderCase{"NotAnObject", "[1, 2]", "", {"not a JSON object"}},
        HeaderCase{"EntryNotObject", R"({"w": 5})", "", {"'w'", "not a JSON object"}},
        HeaderCase{"MissingDtype",
                   R"({"w":{"shape":[2],"data_offsets":[0,8]}})",
                   k8,
                   {"'w'", "\"dtype\""}},
        HeaderCase{"DtypeNotString",
                   R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})",
                   k8,
                   {"'w'", "\"dtype\" is not a string"}},
        HeaderCase{"UnknownDtype",
                   R"({"w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})",
                   k8,
                   {"'w'", "unsupported dtype 'F8_E4M3'"}},
        HeaderCase{"MissingShape",
                   R"({"w":{"dtype":"F32","data_offsets":[0,8]}})",
                   k8,
                   {"'w'", "missing \"shape\""}},
        HeaderCase{"ShapeNotArray",
                   "{" + f32("w", "2", "[0,8]") + "}",
                   k8,
                   {"'w'", "\"shape\" is not an array"}},
        HeaderCase{"NegativeDim",
                   "{" + f32("w", "[-2]", "[0,8]") + "}",
                   k8,
                   {"'w'", "non-negative integers", "-2"}},
        HeaderCase{"FloatDim",
                   "{" + f32("w", "[2.0]", "[0,8]") + "}",
                   k8,
                   {"'w'", "non-negative integers"}},
        HeaderCase{"DimOverflow",
                   "{" + f32("w", "[4294967296,4294967296,16]", "[0,8]") + "}",
                   k8,
                   {"'w'", "overflows"}},
        HeaderCase{"ByteSizeOverflow",
                   "{" + f32("w", "[4611686018427387904]", "[0,8]") + "}",
                   k8,
                   {"'w'", "overflows the byte size"}},
        HeaderCase{"MissingOffsets",
                   R"({"w":{"dtype":"F32","shape":[2]}})",
                   k8,
                   {"'w'", "missing \"data_offsets\""}},
        HeaderCase{"OffsetsWrongLength",
                   "{" + f32("w", "[2]", "[0,8,8]") + "}",
                   k8,
                   {"'w'", "array of two integers"}},
        HeaderCase{"NegativeOffset",
                   "{" + f32("w", "[0]", "[-8,-8]") + "}",
                   "",
                   {"'w'", "non-negative integers"}},
        HeaderCase{"FloatOffset",
                   "{" + f32("w", "[2]", "[0,8.0]") + "}",
                   k8,
                   {"'w'", "non-negative integers"}},
        HeaderCase{"BeginAfterEnd",
                   "{" + f32("w", "[0]", "[8,0]") + "}",
                   k8,
                   {"'w'", "begin 8 is after end 0"}},
        HeaderCase{"EndBeyondBuffer",
                   "{" + f32("w", "[4]", "[0,16]") + "}",
                   k8,
                   {"'w'", "end 16 is beyond the 8-byte data buffer"}},
        HeaderCase{"HugeEnd",
                   "{" + f32("w", "[2]", "[0,18446744073709551615]") + "}",
                   k8,
                   {"'w'", "beyond the 8-byte data buffer"}},
        HeaderCase{"SizeMismatch",
                   "{" + f32("w", "[3]", "[0,8]") + "}",
                   k8,
                   {"'w'", "span 8 bytes", "need 12"}},
        HeaderCase{"Overlap",
                   "{" + f32("a", "[2]", "[0,8]") + "," + f32("b", "[2]", "[4,12]") + "}",
                   std::string(12, 'x'),
                   {"'b'", "overlap tensor 'a'"}},
        HeaderCase{"ZeroSizeInsideAnother",
                   "{" + f32("a", "[2]", "[0,8]") + "," + f32("z", "[0]", "[4,4]") + "}",
                   k8,
                   {"'z'", "overlap tensor 'a'"}},
        HeaderCase{
            "LeadingHole", "{" + f32("a", "[1]", "[4,8]") + "}", k8, {"hole", "[0, 4)", "'a'"}},
        HeaderCase{"MiddleHole",
                   "{" + f32("a", "[1]", "[0,4]") + "," + f32("b", "[1]", "[8,12]") + "}",
                   std::string(12, 'x'),
                   {"hole", "[4, 8)", "'b'"}},
        HeaderCase{
            "TrailingBytes", "{" + f32("a", "[1]", "[0,4]") + "}", k8, {"hole", "[4, 8)", "end"}},
        HeaderCase{"MetadataNotObject",
                   R"({"__metadata__":["pt"]})",
                   "",
                   {"\"__metadata__\" is not a JSON object"}},
        HeaderCase{"MetadataValueNotString",
                   R"({"__metadata__":{"format":1}})",
                   "",
                   {"\"__metadata__\" entry 'format' is not a string"}}),
    [](const ::testing::TestParamInfo<HeaderCase>& info) { return info.param.label; });

TEST(SafetensorsValidation, AcceptsZeroSizeTensorsAnywhereAndDtypeSizes) {
  const ScratchDir scratch;
  const std::string header = "{" + f32("z0", "[0]", "[0,0]") + "," + f32("a", "[1]", "[0,4]") +
                             "," + f32("z1", "[3,0]", "[4,4]") + "," +
                             R"("h":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},)" +
                             f32("z2", "[0]", "[8,8]") + "}";
  const fs::path path = write_raw(scratch / "a.safetensors", header, k8);
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a", "h", "z0", "z1", "z2"}));
  EXPECT_EQ(file.tensor("z1").sizes(), (std::vector<int64_t>{3, 0}));
  EXPECT_EQ(file.tensor("h").scalar_type(), torch::kBFloat16);
}

}  // namespace
