// `lctrain forward` against logits from an independent Hugging Face-semantics implementation, for
// every RoPE scaling of the tiny-llama-parity fixture (bf16 weights, GQA, tied embeddings).
#include <gtest/gtest.h>

#include <iostream>

#include "io/safetensors.h"
#include "support/test_support.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::fixture_dir;
using testing::run_command;
using testing::ScratchDir;

class ForwardParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ForwardParity, MatchesReferenceLogitsInFloat32) {
  const auto fixture = fixture_dir("tiny-llama-parity");
  const auto cases = read_json_file(fixture / "cases.json");
  const std::string name = GetParam();
  ASSERT_TRUE(cases.contains(name));
  ScratchDir scratch;
  const auto out = scratch / "logits.safetensors";
  const std::string command = testing::lctrain_binary().string() + " forward --model " +
                              fixture.string() + " --ids " + (fixture / "ids.txt").string() +
                              " --out " + out.string() + " --dtype f32 --rope-scaling '" +
                              cases[name].dump() + "'";
  const auto result = run_command(command);
  ASSERT_EQ(result.exit_code, 0) << result.output;

  const auto actual = io::SafetensorsFile::open(out).tensor("logits");
  const auto expected =
      io::SafetensorsFile::open(fixture / "expected_logits.safetensors").tensor(name);
  ASSERT_EQ(actual.scalar_type(), torch::kFloat32);
  ASSERT_EQ(actual.sizes(), expected.sizes());
  const double max_abs = (actual - expected).abs().max().item<double>();
  std::cout << "[parity] " << name << " max abs diff " << max_abs << std::endl;
  EXPECT_LT(max_abs, 1e-3) << name;
}

INSTANTIATE_TEST_SUITE_P(AllScalings, ForwardParity,
                         ::testing::Values("default", "linear2", "linear4", "dynamic4", "yarn4",
                                           "llama3_4"));

TEST(ForwardParity, ScalingChangesLogitsBeyondTheWindow) {
  // Guards the test above: the cases must be distinguishable, or parity would prove nothing.
  const auto expected =
      io::SafetensorsFile::open(fixture_dir("tiny-llama-parity") / "expected_logits.safetensors");
  const auto plain = expected.tensor("default");
  for (const char* name : {"linear2", "linear4", "dynamic4", "yarn4", "llama3_4"}) {
    EXPECT_GT((plain - expected.tensor(name)).abs().max().item<double>(), 1e-2) << name;
  }
}

TEST(ForwardParity, OutOfRangeRopeScalingIsRefusedNamingTheKeyAndSource) {
  const auto fixture = fixture_dir("tiny-llama-parity");
  ScratchDir scratch;
  const auto forward = [&](const fs::path& model, const std::string& extra) {
    return run_command(testing::lctrain_binary().string() + " forward --model " +
                       testing::quoted(model) + " --ids " + testing::quoted(fixture / "ids.txt") +
                       " --out " + testing::quoted(scratch / "logits.safetensors") +
                       " --dtype f32" + extra);
  };
  for (const char* bad : {R"({"rope_type":"yarn","factor":4,"beta_fast":-1})",
                          R"({"rope_type":"yarn","factor":4,"beta_slow":1e9})",
                          R"({"rope_type":"yarn","factor":4,"beta_fast":1,"beta_slow":32})"}) {
    const auto result = forward(fixture, " --rope-scaling " + testing::quoted(std::string(bad)));
    EXPECT_NE(result.exit_code, 0) << bad << "\n" << result.output;
    EXPECT_TRUE(testing::contains(result.output, "--rope-scaling")) << result.output;
    EXPECT_TRUE(testing::contains(result.output, "beta_")) << result.output;
    EXPECT_FALSE(fs::exists(scratch / "logits.safetensors"));
  }
  // The same from a model's config.json names that file.
  const fs::path model = scratch / "model";
  fs::copy(fixture, model);
  auto config = read_json_file(model / "config.json");
  config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4}, {"beta_fast", -1}};
  testing::write_text(model / "config.json", config.dump(2));
  const auto result = forward(model, "");
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_TRUE(testing::contains(result.output, (model / "config.json").string())) << result.output;
  EXPECT_TRUE(testing::contains(result.output, "beta_fast")) << result.output;
}

}  // namespace
}  // namespace lctrain
