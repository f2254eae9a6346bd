// config.json parsing: defaults and LLaMA 1/2/3 variants, round trip for export, and a fuzz pass
// of corrupted configs that must all end in lctrain::Error.
#include <gtest/gtest.h>

#include <random>

#include "model/llama_config.h"
#include "support/test_support.h"
#include "util/error.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

nlohmann::json llama2_7b() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
          {"hidden_size", 4096}, {"intermediate_size", 11008}, {"num_attention_heads", 32},
          {"num_hidden_layers", 32}, {"num_key_value_heads", 32}, {"vocab_size", 32000},
          {"max_position_embeddings", 4096}, {"rms_norm_eps", 1e-5}, {"hidden_act", "silu"},
          {"rope_scaling", nullptr}, {"tie_word_embeddings", false}, {"torch_dtype", "float16"}};
}

std::string error_of(const nlohmann::json& json) {
  try {
    LlamaConfig::from_json(json, "config.json");
  } catch (const Error& error) {
    return error.what();
  }
  return "no error";
}

TEST(LlamaConfig, ReadsLlama2AndCountsParameters) {
  const LlamaConfig config = LlamaConfig::from_json(llama2_7b(), "config.json");
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_EQ(config.kv_groups(), 1);
  EXPECT_DOUBLE_EQ(config.rope_theta, 10000.0);
  EXPECT_TRUE(config.rope_scaling.is_none());
  EXPECT_EQ(config.num_parameters(), 6738415616);  // LLaMA-2-7B's published count
}

TEST(LlamaConfig, ReadsLlama3WithGqaRopeScalingAndEosList) {
  nlohmann::json json = llama2_7b();
  json["num_key_value_heads"] = 8;
  json["rope_theta"] = 500000.0;
  json["eos_token_id"] = {128001, 128009};
  json["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  const LlamaConfig config = LlamaConfig::from_json(json, "config.json");
  EXPECT_EQ(config.kv_groups(), 4);
  EXPECT_EQ(config.eos_token_id, 128001);
  EXPECT_EQ(config.rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(*config.rope_scaling.original_max_position_embeddings, 8192);
}

TEST(LlamaConfig, RoundTripsThroughJsonKeepingUnknownKeys) {
  nlohmann::json json = llama2_7b();
  json["custom_key"] = "kept";
  LlamaConfig config = LlamaConfig::from_json(json, "config.json");
  config.max_position_embeddings = 16384;
  config.rope_scaling = RopeScaling::linear(4.0);
  const nlohmann::json written = config.to_json();
  EXPECT_EQ(written["custom_key"], "kept");
  EXPECT_EQ(written["rope_scaling"]["type"], "linear");
  const LlamaConfig reread = LlamaConfig::from_json(written, "written");
  EXPECT_EQ(reread.max_position_embeddings, 16384);
  EXPECT_EQ(reread.rope_scaling.factor, 4.0);
  EXPECT_EQ(reread.num_parameters(), config.num_parameters());
}

TEST(LlamaConfig, ErrorsNameTheKey) {
  const auto with = [](const std::string& key, const nlohmann::json& value) {
    nlohmann::json json = llama2_7b();
    json[key] = value;
    return error_of(json);
  };
  EXPECT_NE(with("hidden_size", "abc").find("hidden_size"), std::string::npos);
  EXPECT_NE(with("hidden_size", -4).find("hidden_size"), std::string::npos);
  EXPECT_NE(with("num_key_value_heads", 5).find("num_key_value_heads"), std::string::npos);
  EXPECT_NE(with("model_type", "gpt2").find("gpt2"), std::string::npos);
  EXPECT_NE(with("vocab_size", 1e30).find("vocab_size"), std::string::npos);
  EXPECT_NE(with("rope_scaling", {{"type", "linear"}}).find("factor"), std::string::npos);
  nlohmann::json missing = llama2_7b();
  missing.erase("vocab_size");
  EXPECT_NE(error_of(missing).find("vocab_size"), std::string::npos);
  EXPECT_NE(error_of(nlohmann::json::array()).find("object"), std::string::npos);
}

TEST(LlamaConfig, ReportsUnreadableFiles) {
  testing::ScratchDir scratch;
  EXPECT_THROW(LlamaConfig::from_file(scratch / "absent.json"), Error);
  testing::write_text(scratch / "bad.json", "{\"hidden_size\": 4");
  try {
    LlamaConfig::from_file(scratch / "bad.json");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("bad.json"), std::string::npos);
  }
}

TEST(LlamaConfigFuzz, CorruptedConfigsEndInCleanErrors) {
  const std::string valid = llama2_7b().dump();
  std::mt19937 generator(1234);
  const std::string alphabet = "{}[]\":,0123456789-.eE tfnabc\\";
  int parsed = 0;
  int rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text = valid;
    const int edits = 1 + static_cast<int>(generator() % 4);
    for (int edit = 0; edit < edits; ++edit) {
      const size_t position = generator() % text.size();
      switch (generator() % 3) {
        case 0: text[position] = alphabet[generator() % alphabet.size()]; break;
        case 1: text.erase(position, 1 + generator() % 8); break;
        default: text.insert(position, 1, alphabet[generator() % alphabet.size()]); break;
      }
      if (text.empty()) text = "{";
    }
    try {
      LlamaConfig::from_json(parse_json(text, "config.json"), "config.json");
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    }  // any other exception type escapes and fails the test
  }
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(parsed + rejected, 3000);
}

}  // namespace
}  // namespace lctrain
