// Tests for Hugging Face checkpoint folders: sharded export and import, index validation, and
// shard-size parsing.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"
#include "io/sharded_safetensors.h"
#include "support/error_expectations.h"
#include "support/test_support.h"
#include "util/error.h"

namespace {

namespace fs = std::filesystem;
using lctrain::io::parse_byte_size;
using lctrain::io::SafetensorsFile;
using lctrain::io::ShardedSafetensors;
using lctrain::io::write_safetensors;
using lctrain::io::write_sharded_safetensors;
using lctrain::testing::read_text;
using lctrain::testing::ScratchDir;
using lctrain::testing::write_text;
using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

std::string open_error(const fs::path& dir) {
  return lctrain::testing::error_message_of([&] { ShardedSafetensors::open_dir(dir); });
}

using lctrain::testing::expect_contains;

// Five 64-byte tensors named in non-sorted order.
Tensors five_tensors() {
  Tensors tensors;
  for (const char* name : {"e", "d", "c", "b", "a"})
    tensors.emplace_back(name, torch::randn({4, 4}));
  return tensors;
}

TEST(ShardedSafetensors, WritesGreedyShardsAndAnIndexThatRoundTrip) {
  const ScratchDir scratch;
  const Tensors tensors = five_tensors();
  write_sharded_safetensors(scratch.path(), tensors, 150);  // two 64-byte tensors per shard

  const std::vector<std::string> files = {"model-00001-of-00003.safetensors",
                                          "model-00002-of-00003.safetensors",
                                          "model-00003-of-00003.safetensors"};
  for (const std::string& file : files) {
    EXPECT_TRUE(fs::exists(scratch / file)) << file;
    EXPECT_EQ(SafetensorsFile::open(scratch / file).metadata().at("format"), "pt");
  }
  EXPECT_FALSE(fs::exists(scratch / "model.safetensors"));
  const auto index = nlohmann::json::parse(read_text(scratch / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 320);
  const nlohmann::json expected_map = {
      {"e", files[0]}, {"d", files[0]}, {"c", files[1]}, {"b", files[1]}, {"a", files[2]}};
  EXPECT_EQ(index["weight_map"], expected_map);

  const ShardedSafetensors model = ShardedSafetensors::open_dir(scratch.path());
  EXPECT_EQ(model.names(), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  for (const auto& [name, original] : tensors) {
    EXPECT_TRUE(model.contains(name));
    EXPECT_TRUE(torch::equal(model.tensor(name), original)) << name;
    EXPECT_EQ(model.info(name).shape, (std::vector<int64_t>{4, 4}));
    EXPECT_EQ(model.file_of(name), scratch / expected_map[name].get<std::string>());
  }
  EXPECT_FALSE(model.contains("f"));
}

TEST(ShardedSafetensors, TensorLargerThanTheLimitGetsItsOwnShard) {
  const ScratchDir scratch;
  write_sharded_safetensors(scratch.path(),
                            {{"small1", torch::ones({2})},
                             {"big", torch::ones({100})},
                             {"small2", torch::ones({2})},
                             {"small3", torch::ones({2})}},
                            50);
  const auto index = nlohmann::json::parse(read_text(scratch / "model.safetensors.index.json"));
  const nlohmann::json expected_map = {{"small1", "model-00001-of-00003.safetensors"},
                                       {"big", "model-00002-of-00003.safetensors"},
                                       {"small2", "model-00003-of-00003.safetensors"},
                                       {"small3", "model-00003-of-00003.safetensors"}};
  EXPECT_EQ(index["weight_map"], expected_map);
  EXPECT_EQ(index["metadata"]["total_size"], 424);
}

TEST(ShardedSafetensors, WritesOneFileWhenEverythingFits) {
  const ScratchDir scratch;
  const fs::path dir = scratch / "out";  // created by the writer
  const Tensors tensors = five_tensors();
  write_sharded_safetensors(dir, tensors, 320);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "model-00001-of-00001.safetensors"));
  EXPECT_EQ(SafetensorsFile::open(dir / "model.safetensors").metadata().at("format"), "pt");
  const ShardedSafetensors model = ShardedSafetensors::open_dir(dir);
  EXPECT_EQ(model.names().size(), 5u);
  EXPECT_TRUE(torch::equal(model.tensor("c"), tensors[2].second));
  EXPECT_EQ(model.file_of("c"), dir / "model.safetensors");
}

TEST(ShardedSafetensors, WriterRejectsZeroLimitAndNamesRepeatedAcrossShards) {
  const ScratchDir scratch;
  EXPECT_THROW(write_sharded_safetensors(scratch.path(), five_tensors(), 0), lctrain::Error);
  try {
    write_sharded_safetensors(scratch.path(), {{"x", torch::ones({4})}, {"x", torch::ones({4})}},
                              4);
    FAIL() << "expected lctrain::Error";
  } catch (const lctrain::Error& error) {
    expect_contains(error.what(), {scratch.path().string(), "duplicate", "'x'"});
  }
  EXPECT_TRUE(fs::is_empty(scratch.path()));
}

TEST(ShardedSafetensors, PrefersTheIndexAndExposesOnlyTensorsItNames) {
  const ScratchDir scratch;
  write_safetensors(scratch / "model.safetensors", {{"single", torch::ones({1})}});
  write_safetensors(scratch / "part.safetensors",
                    {{"listed", torch::ones({2})}, {"unlisted", torch::ones({3})}});
  write_text(scratch / "model.safetensors.index.json",
             R"({"metadata":{"total_size":8},"weight_map":{"listed":"part.safetensors"}})");
  const ShardedSafetensors model = ShardedSafetensors::open_dir(scratch.path());
  EXPECT_EQ(model.names(), std::vector<std::string>{"listed"});
  EXPECT_FALSE(model.contains("unlisted"));
  EXPECT_FALSE(model.contains("single"));
  try {
    model.tensor("unlisted");
    FAIL() << "expected lctrain::Error";
  } catch (const lctrain::Error& error) {
    expect_contains(error.what(), {"'unlisted'", scratch.path().string()});
  }
}

TEST(ShardedSafetensors, RejectsFoldersWithoutWeights) {
  const ScratchDir scratch;
  expect_contains(open_error(scratch.path()),
                  {scratch.path().string(), "model.safetensors.index.json", "model.safetensors"});
  expect_contains(open_error(scratch / "nope"), {(scratch / "nope").string(), "does not exist"});
  write_text(scratch / "file", "x");
  expect_contains(open_error(scratch / "file"), {(scratch / "file").string(), "not a directory"});
}

TEST(ShardedSafetensors, RejectsMissingShard) {
  const ScratchDir scratch;
  write_text(scratch / "model.safetensors.index.json",
             R"({"weight_map":{"w":"model-00001-of-00002.safetensors"}})");
  expect_contains(open_error(scratch.path()),
                  {(scratch / "model-00001-of-00002.safetensors").string(), "does not exist",
                   (scratch / "model.safetensors.index.json").string()});
}

TEST(ShardedSafetensors, RejectsIndexNamingTensorAbsentFromItsShard) {
  const ScratchDir scratch;
  write_safetensors(scratch / "s1.safetensors", {{"a", torch::ones({1})}});
  write_text(scratch / "model.safetensors.index.json",
             R"({"weight_map":{"a":"s1.safetensors","ghost":"s1.safetensors"}})");
  expect_contains(open_error(scratch.path()),
                  {"'ghost'", (scratch / "s1.safetensors").string(), "missing from shard"});
}

TEST(ShardedSafetensors, RejectsShardNamesOutsideTheFolder) {
  const ScratchDir scratch;
  write_safetensors(scratch / "model.safetensors", {{"w", torch::ones({1})}});
  for (const std::string shard :
       {"../model.safetensors", "/etc/passwd", "sub/model.safetensors", "..", ".", ""}) {
    write_text(scratch / "inner" / "model.safetensors.index.json",
               nlohmann::json{{"weight_map", {{"w", shard}}}}.dump());
    expect_contains(open_error(scratch / "inner"),
                    {(scratch / "inner").string(), "not a plain file name", "'w'"});
  }
}

TEST(ShardedSafetensors, RejectsMalformedIndexJson) {
  const ScratchDir scratch;
  const fs::path index = scratch / "model.safetensors.index.json";
  const auto error_for = [&](const std::string& text) {
    write_text(index, text);
    return open_error(scratch.path());
  };
  expect_contains(error_for("{\"weight_map\": {"), {index.string(), "not valid JSON"});
  expect_contains(error_for("[]"), {index.string(), "not a JSON object"});
  expect_contains(error_for(R"({"metadata":{}})"), {index.string(), "\"weight_map\""});
  expect_contains(error_for(R"({"weight_map":[]})"), {index.string(), "\"weight_map\""});
  expect_contains(error_for(R"({"weight_map":{"w":3}})"), {index.string(), "'w'", "not a string"});
}

TEST(ShardedSafetensors, ReportsCorruptShardWithFolderAndFile) {
  const ScratchDir scratch;
  write_text(scratch / "model.safetensors", "garbage!garbage!");
  expect_contains(open_error(scratch.path()),
                  {scratch.path().string(), (scratch / "model.safetensors").string()});
}

TEST(ParseByteSize, AcceptsHuggingFaceUnits) {
  EXPECT_EQ(parse_byte_size("123"), 123u);
  EXPECT_EQ(parse_byte_size("0"), 0u);
  EXPECT_EQ(parse_byte_size("10KB"), 10'000u);
  EXPECT_EQ(parse_byte_size("500MB"), 500'000'000u);
  EXPECT_EQ(parse_byte_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(parse_byte_size("2TB"), 2'000'000'000'000u);
  EXPECT_EQ(parse_byte_size("5gb"), 5'000'000'000u);
  EXPECT_EQ(parse_byte_size(" 7 GB "), 7'000'000'000u);
  EXPECT_EQ(parse_byte_size("64B"), 64u);
  EXPECT_EQ(parse_byte_size("3KiB"), 3u * 1024);
  EXPECT_EQ(parse_byte_size("1MiB"), 1u << 20);
  EXPECT_EQ(parse_byte_size("2GiB"), uint64_t{2} << 30);
  EXPECT_EQ(parse_byte_size("18446744073709551615"), UINT64_MAX);
}

TEST(ParseByteSize, RejectsJunk) {
  for (const std::string text : {"", " ", "GB", "5XB", "-5GB", "1.5GB", "5 G B", "5GB5", "0x10",
                                 "18446744073709551616", "18446744073709551615KB", "5 GBs"}) {
    try {
      parse_byte_size(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const lctrain::Error& error) {
      expect_contains(error.what(), {"'" + text + "'", "byte size"});
    }
  }
}

}  // namespace
