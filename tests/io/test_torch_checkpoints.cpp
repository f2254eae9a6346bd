// Meta (params.json + consolidated.NN.pth) and older Hugging Face (pytorch_model*.bin) checkpoints:
// tests/io/make_torch_checkpoints.py writes the tiny-llama-parity weights in both layouts with
// Python's own torch.save (Meta's interleaved RoPE rows, two model-parallel shards; a single and a
// sharded .bin), and broken variants. Each must load to the very weights and logits of the
// safetensors fixture, and each broken one must fail with an error naming the file and tensor.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "io/hf_model_dir.h"
#include "io/meta_checkpoint.h"
#include "io/safetensors.h"
#include "io/torch_pickle.h"
#include "support/error_expectations.h"
#include "support/forward_logits.h"
#include "support/test_support.h"
#include "support/torch_checkpoints.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::error_message_of;
using testing::expect_contains;
using testing::fixture_dir;
using testing::quoted;
using testing::run_lctrain;
using testing::ScratchDir;

class TorchCheckpoints : public testing::TorchCheckpointsTest {
 protected:
  static LlamaWeights weights_of(const fs::path& model_dir) {
    const LlamaConfig config = io::load_config(model_dir);
    return io::load_weights(model_dir, config, torch::kFloat32, torch::kCPU);
  }

  static std::string load_error(const std::string& name) {
    return error_message_of([&] { io::load_model(dir(name), io::ModelLoadOptions{}); });
  }

  // `lctrain forward` logits (float32) of the fixture's ids with the model in `model_dir`.
  static torch::Tensor forward_logits(const fs::path& model_dir, const std::string& tag) {
    return testing::forward_logits(model_dir, fixture_dir("tiny-llama-parity") / "ids.txt",
                                   scratch() / ("logits-" + tag + ".safetensors"));
  }

  static void expect_same_logits(const fs::path& model_dir, const std::string& tag) {
    static const torch::Tensor expected =
        forward_logits(fixture_dir("tiny-llama-parity"), "safetensors");
    const torch::Tensor actual = forward_logits(model_dir, tag);
    ASSERT_TRUE(expected.defined() && actual.defined());
    ASSERT_EQ(actual.sizes(), expected.sizes()) << tag;
    const double max_abs = (actual - expected).abs().max().item<double>();
    std::cout << "[torch-checkpoints] " << tag << " max abs logit diff " << max_abs << std::endl;
    EXPECT_LT(max_abs, 1e-6) << tag;
  }

  static void expect_same_weights(const LlamaWeights& actual, const LlamaWeights& expected,
                                  const LlamaConfig& config) {
    LlamaWeights actual_copy = actual;
    LlamaWeights expected_copy = expected;
    const auto actual_slots = weight_slots(config, actual_copy);
    const auto expected_slots = weight_slots(config, expected_copy);
    ASSERT_EQ(actual_slots.size(), expected_slots.size());
    for (size_t index = 0; index < actual_slots.size(); ++index) {
      EXPECT_TRUE(torch::equal(*actual_slots[index].tensor, *expected_slots[index].tensor))
          << actual_slots[index].name;
    }
  }
};

TEST(MetaCheckpoint, IntermediateSizeFollowsMetasRule) {
  EXPECT_EQ(io::meta_intermediate_size(4096, 256, std::nullopt), 11008);  // LLaMA 2 7B
  EXPECT_EQ(io::meta_intermediate_size(5120, 256, std::nullopt), 13824);  // LLaMA 2 13B
  EXPECT_EQ(io::meta_intermediate_size(8192, 4096, 1.3), 28672);          // LLaMA 2 70B
  EXPECT_EQ(io::meta_intermediate_size(4096, 1024, 1.3), 14336);          // Llama 3 8B
  EXPECT_EQ(io::meta_intermediate_size(64, 32, 0.9), 160);                // the tiny fixture
}

TEST_F(TorchCheckpoints, DetectsEachFolderLayout) {
  EXPECT_EQ(io::detect_format(fixture_dir("tiny-llama-parity")),
            io::CheckpointFormat::kSafetensors);
  EXPECT_EQ(io::detect_format(dir("meta")), io::CheckpointFormat::kMeta);
  EXPECT_EQ(io::detect_format(dir("bin")), io::CheckpointFormat::kTorchBin);
  EXPECT_EQ(io::detect_format(dir("bin-sharded")), io::CheckpointFormat::kTorchBin);
  expect_contains(error_message_of([&] { io::detect_format(scratch()); }),
                  {scratch().string(), "no config.json", "params.json"});
}

TEST_F(TorchCheckpoints, MetaParamsJsonBecomesTheHuggingFaceConfig) {
  const LlamaConfig expected = io::load_config(fixture_dir("tiny-llama-parity"));
  const LlamaConfig config = io::load_config(dir("meta"));
  EXPECT_EQ(config.vocab_size, expected.vocab_size);  // params.json says -1: tok_embeddings rows
  EXPECT_EQ(config.hidden_size, expected.hidden_size);
  EXPECT_EQ(config.intermediate_size, expected.intermediate_size);  // multiple_of + multiplier
  EXPECT_EQ(config.num_hidden_layers, expected.num_hidden_layers);
  EXPECT_EQ(config.num_attention_heads, expected.num_attention_heads);
  EXPECT_EQ(config.num_key_value_heads, expected.num_key_value_heads);
  EXPECT_EQ(config.head_dim, expected.head_dim);
  EXPECT_DOUBLE_EQ(config.rms_norm_eps, expected.rms_norm_eps);
  EXPECT_DOUBLE_EQ(config.rope_theta, expected.rope_theta);
  EXPECT_EQ(config.max_position_embeddings, expected.max_position_embeddings);
  EXPECT_FALSE(config.tie_word_embeddings);  // Meta always stores output.weight
}

TEST_F(TorchCheckpoints, MetaWindowIsInferredPerLlamaVersionWithoutMaxSeqLen) {
  const ScratchDir scratch;
  for (const char* file : {"consolidated.00.pth", "consolidated.01.pth"}) {
    fs::create_symlink(dir("meta") / file, scratch / file);
  }
  nlohmann::json params = read_json_file(dir("meta") / "params.json");
  params.erase("max_seq_len");
  for (const auto& [norm_eps, window] : {std::pair{1e-6, 2048}, {1e-5, 4096}}) {
    params["norm_eps"] = norm_eps;
    testing::write_text(scratch / "params.json", params.dump());
    EXPECT_EQ(io::load_config(scratch.path()).max_position_embeddings, window) << norm_eps;
  }
}

TEST_F(TorchCheckpoints, MetaShardsMergeAndPermuteToTheHuggingFaceWeights) {
  const fs::path fixture = fixture_dir("tiny-llama-parity");
  const LlamaConfig config = io::load_config(fixture);
  const LlamaWeights expected = weights_of(fixture);
  LlamaWeights actual = weights_of(dir("meta"));
  EXPECT_TRUE(torch::equal(actual.lm_head, expected.embed_tokens));  // output.weight, dim-0 split
  actual.lm_head = actual.embed_tokens;  // the fixture is tied; compare the rest slot by slot
  expect_same_weights(actual, expected, config);

  // Guard: Meta's wq really is in another row order here, so the permutation is exercised.
  const auto shard0 = io::read_torch_archive(dir("meta") / "consolidated.00.pth");
  const auto shard1 = io::read_torch_archive(dir("meta") / "consolidated.01.pth");
  const torch::Tensor raw = torch::cat({shard0.at("layers.0.attention.wq.weight"),
                                        shard1.at("layers.0.attention.wq.weight")})
                                .to(torch::kFloat32);
  EXPECT_EQ(raw.sizes(), expected.layers[0].attention.q_proj.sizes());
  EXPECT_FALSE(torch::equal(raw, expected.layers[0].attention.q_proj));
}

TEST_F(TorchCheckpoints, BinCheckpointsLoadTheSameWeightsSingleAndSharded) {
  const fs::path fixture = fixture_dir("tiny-llama-parity");
  const LlamaConfig config = io::load_config(fixture);
  const LlamaWeights expected = weights_of(fixture);
  for (const char* name : {"bin", "bin-sharded"}) {
    SCOPED_TRACE(name);
    const LlamaWeights actual = weights_of(dir(name));
    expect_same_weights(actual, expected, config);
    // The model owns its weights: none may alias (and keep open) a memory-mapped .bin.
    EXPECT_TRUE(actual.layers[0].mlp.down_proj.is_contiguous());
  }
}

TEST_F(TorchCheckpoints, TensorViewsHonourStorageOffsetAndStride) {
  const auto tensors = io::read_torch_archive(dir("bin") / "pytorch_model.bin");
  const torch::Tensor& q = tensors.at("model.layers.0.self_attn.q_proj.weight");
  const torch::Tensor& k = tensors.at("model.layers.0.self_attn.k_proj.weight");
  EXPECT_TRUE(q.is_alias_of(k));  // one fused storage, as the script saved it
  EXPECT_EQ(k.storage_offset(), q.numel());
  const torch::Tensor& down = tensors.at("model.layers.0.mlp.down_proj.weight");
  EXPECT_FALSE(down.is_contiguous());
  EXPECT_TRUE(tensors.at("lm_head.weight").is_alias_of(tensors.at("model.embed_tokens.weight")));
}

TEST_F(TorchCheckpoints, ForwardGivesTheSafetensorsLogitsForEveryFormat) {
  expect_same_logits(dir("meta"), "meta");
  expect_same_logits(dir("bin"), "bin");
  expect_same_logits(dir("bin-sharded"), "bin-sharded");
}

TEST_F(TorchCheckpoints, ConvertWritesTheHuggingFaceLayout) {
  testing::write_text(dir("meta") / "tokenizer.model", "not parsed by convert");
  const auto meta_out = scratch() / "converted-meta";
  auto result = run_lctrain("convert --from meta " + quoted(dir("meta")) + " --out " +
                            quoted(meta_out) + " --dtype f32");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(fs::exists(meta_out / "model.safetensors"));
  EXPECT_EQ(testing::read_text(meta_out / "tokenizer.model"), "not parsed by convert");
  const auto config = read_json_file(meta_out / "config.json");
  EXPECT_EQ(config["intermediate_size"], 160);
  EXPECT_EQ(config["vocab_size"], 257);
  EXPECT_EQ(config["num_key_value_heads"], 2);
  EXPECT_EQ(config["torch_dtype"], "float32");
  expect_same_logits(meta_out, "converted-meta");

  const auto bin_out = scratch() / "converted-bin";
  result = run_lctrain("convert --from hf-bin " + quoted(dir("bin-sharded")) + " --out " +
                       quoted(bin_out) + " --dtype bf16 --max-shard-size 100KB");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(fs::exists(bin_out / "model.safetensors.index.json"));
  expect_same_logits(bin_out, "converted-bin");  // the fixture's weights are bf16: lossless

  result = run_lctrain("convert --from meta " + quoted(dir("bin")) + " --out " +
                       quoted(scratch() / "never"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(contains(result.output, "holds a hf-bin checkpoint, not --from meta"))
      << result.output;
}

TEST_F(TorchCheckpoints, APickleCallingOsSystemIsRejectedNotRun) {
  const auto file = dir("bad/evil") / "pytorch_model.bin";
  expect_contains(load_error("bad/evil"), {file.string(), "posix.system is not allowed"});
  const auto result = run_lctrain("forward --model " + quoted(dir("bad/evil")) + " --ids " +
                                  quoted(fixture_dir("tiny-llama-parity") / "ids.txt") + " --out " +
                                  quoted(scratch() / "evil.safetensors"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(contains(result.output, "posix.system is not allowed")) << result.output;
  EXPECT_FALSE(fs::exists(dir("bad/evil") / "PWNED"));
}

TEST_F(TorchCheckpoints, MalformedArchivesNameTheFileAndTensor) {
  const auto bin = [&](const std::string& name) {
    return (dir("bad/" + name) / "pytorch_model.bin").string();
  };
  expect_contains(load_error("bad/truncated"), {bin("truncated"), "truncated"});
  expect_contains(load_error("bad/wrong-shape"), {"model.layers.1.self_attn.v_proj.weight",
                                                  "pytorch_model.bin", "[31, 64]", "[32, 64]"});
  expect_contains(load_error("bad/not-a-tensor"),
                  {bin("not-a-tensor"),
                   "'model.layers.0.input_layernorm.weight' is not a tensor but a Python int"});
  expect_contains(load_error("bad/short-storage"),
                  {bin("short-storage"), "tensor '", "bytes, but"});
  expect_contains(load_error("bad/compressed"), {bin("compressed"), "compressed"});
  expect_contains(load_error("bad/legacy"), {bin("legacy"), "legacy torch.save format"});
  expect_contains(load_error("bad/deep"), {bin("deep"), "holds a list, not a dict of tensors"});
  expect_contains(load_error("bad/meta-mismatch"),
                  {dir("bad/meta-mismatch").string(), "layers.1.attention.wv.weight",
                   "consolidated.00.pth", "consolidated.01.pth", "[16, 63]", "except along dim 0"});
}

}  // namespace
}  // namespace lctrain
