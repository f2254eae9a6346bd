// The sharded trainer computes what one process computes: a tiny model trained 10 fp32 steps
// through `lctrain launch` with W = 2 and W = 4 (Gloo) matches W = 1 in every step's loss and in
// the final parameters, without activation checkpointing, with it on every layer, and on every
// second layer (which also equals the plain run), with gradient accumulation (the global batch is
// held fixed: W x accumulation = 4).
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "io/sharded_safetensors.h"
#include "support/test_support.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

using testing::run_command;
using testing::ScratchDir;
using testing::write_text;

struct TrainingRun {
  std::vector<double> losses;
  std::filesystem::path final_dir;
};

// How layers are recomputed: not at all, every layer, every second layer (the others keep their
// activations and gathered weights).
enum class Recompute { kNone, kAll, kEverySecond };

class FsdpEquivalence : public ::testing::TestWithParam<std::tuple<Recompute, bool>> {
 protected:
  void SetUp() override {
    const bool tied = std::get<1>(GetParam());
    write_text(scratch_ / "model.json", nlohmann::json{{"vocab_size", 61},
                                                       {"hidden_size", 32},
                                                       {"intermediate_size", 48},
                                                       {"num_hidden_layers", 2},
                                                       {"num_attention_heads", 4},
                                                       {"num_key_value_heads", 2},
                                                       {"max_position_embeddings", 16},
                                                       {"tie_word_embeddings", tied}}
                                            .dump());
    std::mt19937 generator(5);
    std::ostringstream tokens;
    // A learnable stream (a fixed successor rule with 10% noise), so the loss visibly falls.
    unsigned token = 1;
    for (int i = 0; i < 4000; ++i) {
      token = generator() % 10 == 0 ? generator() % 61 : (token * 7 + 3) % 61;
      tokens << token << (i % 20 == 19 ? '\n' : ' ');
    }
    write_text(scratch_ / "tokens.txt", tokens.str());
    write_text(
        scratch_ / "run.yaml",
        "model:\n  config: " + (scratch_ / "model.json").string() +
            "\n  init_seed: 3\n"
            "context:\n  target_length: 32\n"
            "data:\n  path: " +
            (scratch_ / "tokens.txt").string() +
            "\n"
            "training:\n  steps: 10\n  micro_batch_size: 2\n  precision: fp32\n  device: cpu\n"
            "  max_grad_norm: 0.5\n"
            "optimizer:\n  lr: 0.003\n  weight_decay: 0.1\n"
            "schedule:\n  warmup_steps: 3\n"
            "distributed:\n  timeout_seconds: 60\n");
  }

  TrainingRun train(int world_size, Recompute recompute) {
    const auto out = scratch_ / ("w" + std::to_string(world_size) + "-" +
                                 std::to_string(static_cast<int>(recompute)));
    const std::string arguments =
        " train --config " + (scratch_ / "run.yaml").string() + " output.dir=" + out.string() +
        " training.gradient_accumulation=" + std::to_string(4 / world_size) +
        " training.activation_checkpointing=" + (recompute != Recompute::kNone ? "true" : "false") +
        " training.activation_checkpointing_every=" +
        (recompute == Recompute::kEverySecond ? "2" : "1");
    const std::string binary = testing::lctrain_binary().string();
    const std::string command =
        world_size == 1
            ? binary + arguments
            : binary + " launch --nproc-per-node " + std::to_string(world_size) + " --" + arguments;
    const auto result = run_command(command);
    EXPECT_EQ(result.exit_code, 0) << result.output;
    TrainingRun run;
    run.final_dir = out / "final";
    std::ifstream metrics(out / "metrics.jsonl");
    std::string line;
    while (std::getline(metrics, line)) run.losses.push_back(nlohmann::json::parse(line)["loss"]);
    return run;
  }

  static void expect_same(const TrainingRun& reference, const TrainingRun& sharded,
                          int world_size) {
    ASSERT_EQ(reference.losses.size(), 10u);
    ASSERT_EQ(sharded.losses.size(), 10u);
    for (size_t step = 0; step < 10; ++step) {
      EXPECT_NEAR(sharded.losses[step], reference.losses[step],
                  1e-5 * std::abs(reference.losses[step]))
          << "W=" << world_size << " step " << step + 1;
    }
    // Training must have moved: otherwise equal parameters would prove nothing.
    EXPECT_LT(reference.losses.back(), reference.losses.front());
    const auto expected = io::ShardedSafetensors::open_dir(reference.final_dir);
    const auto actual = io::ShardedSafetensors::open_dir(sharded.final_dir);
    ASSERT_EQ(expected.names(), actual.names());
    for (const std::string& name : expected.names()) {
      const auto a = expected.tensor(name);
      const auto b = actual.tensor(name);
      const double scale = a.abs().max().item<double>();
      EXPECT_LE((a - b).abs().max().item<double>(), 1e-5 * scale) << name << " W=" << world_size;
    }
  }

  ScratchDir scratch_;
};

TEST_P(FsdpEquivalence, ShardedRunsMatchOneProcess) {
  const Recompute recompute = std::get<0>(GetParam());
  const TrainingRun single = train(1, recompute);
  expect_same(single, train(2, recompute), 2);
  expect_same(single, train(4, recompute), 4);
  // Mixing recomputed and kept layers (the 2-layer model has one of each) changes nothing.
  if (recompute == Recompute::kEverySecond) expect_same(train(1, Recompute::kNone), single, 1);
}

std::string instance_name(const ::testing::TestParamInfo<std::tuple<Recompute, bool>>& info) {
  static const char* const kRecompute[] = {"Plain", "Checkpointed", "EverySecondLayerCheckpointed"};
  return std::string(kRecompute[static_cast<int>(std::get<0>(info.param))]) +
         (std::get<1>(info.param) ? "Tied" : "Untied");
}

INSTANTIATE_TEST_SUITE_P(CheckpointingAndTying, FsdpEquivalence,
                         ::testing::Combine(::testing::Values(Recompute::kNone, Recompute::kAll,
                                                              Recompute::kEverySecond),
                                            ::testing::Bool()),
                         instance_name);

}  // namespace
}  // namespace lctrain
