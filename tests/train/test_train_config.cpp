// TrainConfig: every validation rule (with the key named in the message), override parsing and
// types, YAML structure errors with line numbers, the to_yaml round trip, the shipped recipes
// under configs/, and a fuzz pass of corrupted YAML that must only ever raise lctrain::Error.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <sstream>

#include "model/llama_config.h"
#include "support/error_expectations.h"
#include "support/test_support.h"
#include "train/train_config.h"
#include "util/error.h"

namespace lctrain {
namespace {

// The smallest valid config: the three required keys.
const char* kMinimal =
    "model:\n"
    "  path: /models/llama-7b-hf\n"
    "context:\n"
    "  target_length: 8192\n"
    "data:\n"
    "  path: data/pile-tokens\n";

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    TrainConfig::from_yaml_text(yaml, "cfg.yaml", overrides);
  } catch (const Error& error) {
    return error.what();
  }
  return "no error";
}

// Asserts that loading fails with a message holding every one of `parts`.
void expect_error(const std::string& yaml, const std::vector<std::string>& overrides,
                  const std::vector<std::string>& parts) {
  const std::string message = error_of(yaml, overrides);
  for (const std::string& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos)
        << "expected '" << part << "' in: " << message
        << (overrides.empty() ? "" : "\n(override " + overrides.front() + ")");
  }
}

TEST(TrainConfig, MinimalConfigGetsThePaperDefaults) {
  const TrainConfig config = TrainConfig::from_yaml_text(kMinimal, "cfg.yaml");
  EXPECT_EQ(config.model.path, "/models/llama-7b-hf");
  EXPECT_EQ(config.context.target_length, 8192);
  EXPECT_EQ(config.context.original_length, 0);
  EXPECT_EQ(config.context.scaling, "linear");
  EXPECT_EQ(config.training.steps, 1000);
  EXPECT_EQ(config.training.precision, "bf16");
  EXPECT_TRUE(config.training.activation_checkpointing);
  EXPECT_EQ(config.training.activation_checkpointing_every, 1);
  EXPECT_DOUBLE_EQ(config.optimizer.lr, 2e-5);
  EXPECT_DOUBLE_EQ(config.optimizer.beta1, 0.9);
  EXPECT_DOUBLE_EQ(config.optimizer.beta2, 0.95);
  EXPECT_DOUBLE_EQ(config.optimizer.weight_decay, 0.0);
  EXPECT_EQ(config.schedule.type, "constant");
  EXPECT_EQ(config.schedule.warmup_steps, 20);
  EXPECT_DOUBLE_EQ(config.schedule.warmup_start_factor, 0.1);
  EXPECT_EQ(config.distributed.backend, "auto");
  EXPECT_EQ(config.output.dir, "out/run");
  EXPECT_EQ(config.effective_sequence_length(), 8192);
  EXPECT_EQ(config.global_batch_size(32), 32);
  EXPECT_EQ(config.training.context_parallel, 1);
}

TEST(TrainConfig, ContextParallelGroupsShareTheirSequences) {
  const TrainConfig config = TrainConfig::from_yaml_text(
      kMinimal, "cfg.yaml", {"training.context_parallel=4", "training.micro_batch_size=2"});
  EXPECT_EQ(config.data_parallel_size(32), 8);
  EXPECT_EQ(config.global_batch_size(32), 16);  // 8 groups x 2 sequences
  testing::expect_contains(testing::error_message_of([&] { config.global_batch_size(6); }),
                           {"training.context_parallel=4 does not divide the 6 rank(s)"});
}

TEST(TrainConfig, SequenceLengthDefaultsToTarget) {
  TrainConfig config =
      TrainConfig::from_yaml_text(kMinimal, "cfg.yaml", {"training.sequence_length=4096"});
  EXPECT_EQ(config.effective_sequence_length(), 4096);
  config.training.sequence_length = 0;
  EXPECT_EQ(config.effective_sequence_length(), 8192);
}

TEST(TrainConfig, RandomInitNeedsOnlyModelConfig) {
  const TrainConfig config = TrainConfig::from_yaml_text(
      "model: {config: configs/models/tiny-test.json}\ncontext: {target_length: 256}\n"
      "data: {path: t.bin}\n",
      "cfg.yaml");
  EXPECT_TRUE(config.model.path.empty());
  EXPECT_EQ(config.model.config, "configs/models/tiny-test.json");
}

struct RangeCase {
  std::string override_text;
  std::vector<std::string> parts;
};

TEST(TrainConfig, EveryRangeRuleNamesItsKey) {
  const std::vector<RangeCase> cases = {
      {"training.steps=0", {"training.steps", "must be > 0", "got 0"}},
      {"training.steps=-5", {"training.steps", "must be > 0"}},
      {"training.micro_batch_size=0", {"training.micro_batch_size", "must be > 0"}},
      {"training.gradient_accumulation=0", {"training.gradient_accumulation", "must be > 0"}},
      {"training.sequence_length=-1", {"training.sequence_length", "must be >= 0"}},
      {"training.activation_checkpointing_every=0",
       {"training.activation_checkpointing_every", "must be > 0"}},
      {"training.sequence_length=9000", {"training.sequence_length", "exceeds", "target_length"}},
      {"training.context_parallel=0", {"training.context_parallel", "must be > 0"}},
      {"training.context_parallel=3",
       {"training.context_parallel=3", "6 equal chunks", "8192 tokens do not divide"}},
      {"training.precision=bf-16",
       {"training.precision", "bf16, fp16, fp32", "did you mean 'bf16'"}},
      {"training.reduce_dtype=fp16", {"training.reduce_dtype", "fp32, bf16"}},
      {"optimizer.lr=0", {"optimizer.lr", "must be > 0"}},
      {"optimizer.lr=-2e-5", {"optimizer.lr", "must be > 0"}},
      {"optimizer.beta1=1", {"optimizer.beta1", "must be in [0, 1)"}},
      {"optimizer.beta1=-0.1", {"optimizer.beta1", "must be in [0, 1)"}},
      {"optimizer.beta2=1.0", {"optimizer.beta2", "must be in [0, 1)"}},
      {"optimizer.eps=0", {"optimizer.eps", "must be > 0"}},
      {"optimizer.weight_decay=-0.1", {"optimizer.weight_decay", "must be >= 0"}},
      {"schedule.type=linear", {"schedule.type", "constant, cosine"}},
      {"schedule.warmup_steps=-1", {"schedule.warmup_steps", "must be >= 0"}},
      {"schedule.warmup_start_factor=0", {"schedule.warmup_start_factor", "must be in (0, 1]"}},
      {"schedule.warmup_start_factor=1.5", {"schedule.warmup_start_factor", "(0, 1]"}},
      {"schedule.min_lr_factor=1.5", {"schedule.min_lr_factor", "[0, 1]"}},
      {"context.target_length=0", {"context.target_length", "must be > 0"}},
      {"context.target_length=-8192", {"context.target_length", "must be > 0"}},
      {"context.original_length=-1", {"context.original_length", "must be >= 0"}},
      {"context.original_length=16384", {"context.target_length", "shorter", "original_length"}},
      {"context.scaling=linaer", {"context.scaling", "did you mean 'linear'"}},
      {"context.scaling=ntk", {"context.scaling", "linear, dynamic, yarn, llama3, none"}},
      {"distributed.backend=mpi", {"distributed.backend", "auto, gloo, nccl"}},
      {"distributed.timeout_seconds=0", {"distributed.timeout_seconds", "must be > 0"}},
      {"model.init_std=0", {"model.init_std", "must be > 0"}},
      {"model.path=", {"model.path", "model.config"}},
      {"data.path=", {"data.path", "is required"}},
      {"output.dir=", {"output.dir", "is required"}},
      {"output.log_every=0", {"output.log_every", "must be > 0"}},
      {"output.checkpoint_every=-2", {"output.checkpoint_every", "must be >= -1"}},
      {"output.keep_checkpoints=0", {"output.keep_checkpoints", "must be >= 1"}},
  };
  for (const RangeCase& range_case : cases) {
    expect_error(kMinimal, {range_case.override_text}, range_case.parts);
  }
}

TEST(TrainConfig, BoundaryValuesAreAccepted) {
  const TrainConfig config = TrainConfig::from_yaml_text(
      kMinimal, "cfg.yaml",
      {"optimizer.beta1=0", "optimizer.beta2=0.999999", "schedule.warmup_start_factor=1",
       "schedule.warmup_steps=0", "schedule.min_lr_factor=1", "training.max_grad_norm=0",
       "training.max_grad_norm=-1", "context.original_length=8192", "training.sequence_length=8192",
       "output.checkpoint_every=0", "context.scaling=none"});
  EXPECT_DOUBLE_EQ(config.training.max_grad_norm, -1.0);  // the later override wins
  EXPECT_DOUBLE_EQ(config.schedule.warmup_start_factor, 1.0);
  EXPECT_EQ(config.context.scaling, "none");
}

TEST(TrainConfig, MissingRequiredKeys) {
  expect_error("", {}, {"cfg.yaml", "context.target_length", "must be > 0"});
  expect_error("context: {target_length: 8192}\ndata: {path: d}\n", {},
               {"model.path", "model.config"});
  expect_error("model: {path: m}\ncontext: {target_length: 8192}\n", {}, {"data.path"});
  expect_error("model: {path: m}\ndata: {path: d}\n", {}, {"context.target_length"});
}

TEST(TrainConfig, TypeErrorsNameTheKeyAndValue) {
  expect_error(kMinimal, {"training.steps=abc"},
               {"training.steps: expected an integer, got 'abc'", "override 'training.steps=abc'"});
  expect_error(kMinimal, {"training.steps=1.5"},
               {"training.steps: expected an integer, got '1.5'"});
  expect_error(kMinimal, {"training.steps=1e3"}, {"expected an integer"});
  expect_error(kMinimal, {"training.steps=99999999999999999999"}, {"expected an integer"});
  expect_error(kMinimal, {"training.steps="}, {"training.steps: expected an integer, got ''"});
  expect_error(kMinimal, {"data.seed=-1"}, {"data.seed: expected a non-negative integer"});
  expect_error(kMinimal, {"optimizer.lr=fast"},
               {"optimizer.lr: expected a finite number, got 'fast'"});
  expect_error(kMinimal, {"optimizer.lr=nan"}, {"optimizer.lr: expected a finite number"});
  expect_error(kMinimal, {"optimizer.lr=inf"}, {"optimizer.lr: expected a finite number"});
  expect_error(kMinimal, {"optimizer.lr=1e999"}, {"optimizer.lr: expected a finite number"});
  expect_error(kMinimal, {"training.activation_checkpointing=yes"},
               {"training.activation_checkpointing: expected true or false, got 'yes'"});
  expect_error(kMinimal, {"training.activation_checkpointing=1"}, {"expected true or false"});
  // The same checks apply to values written in the file, with the line number.
  expect_error(std::string(kMinimal) + "training:\n  steps: [1, 2]\n", {},
               {"cfg.yaml:8", "training.steps: expected an integer, got a list"});
  expect_error(std::string(kMinimal) + "training:\n  steps: {a: 1}\n", {},
               {"training.steps: expected an integer, got a mapping"});
  expect_error(std::string(kMinimal) + "training:\n  steps:\n", {},
               {"cfg.yaml:8", "training.steps: expected an integer, got nothing"});
  expect_error(std::string(kMinimal) + "optimizer:\n  lr: 2e-5x\n", {},
               {"cfg.yaml:8", "optimizer.lr: expected a finite number, got '2e-5x'"});
  expect_error(std::string(kMinimal) + "output:\n  dir: [a, b]\n", {},
               {"output.dir: expected a string, got a list"});
}

TEST(TrainConfig, ValuesInTheFileCarryTheirLine) {
  const std::string yaml = std::string(kMinimal) + "training:\n  micro_batch_size: 3\n  steps: 0\n";
  expect_error(yaml, {}, {"cfg.yaml:9: training.steps must be > 0, got 0"});
}

TEST(TrainConfig, OverridesParseLikeTheFile) {
  const TrainConfig config = TrainConfig::from_yaml_text(
      std::string(kMinimal) + "training:\n  steps: 1000\noutput:\n", "cfg.yaml",
      {"training.steps=10", "optimizer.lr=1e-4", "optimizer.beta2=+0.98",
       "training.activation_checkpointing=false", " schedule.type = cosine ",
       "model.path=/data/my models/llama", "output.dir=out/x=y", "data.seed=18446744073709551615",
       "training.precision=fp32", "distributed.timeout_seconds=30", "model.init_seed=7"});
  EXPECT_EQ(config.training.steps, 10);
  EXPECT_DOUBLE_EQ(config.optimizer.lr, 1e-4);
  EXPECT_DOUBLE_EQ(config.optimizer.beta2, 0.98);
  EXPECT_FALSE(config.training.activation_checkpointing);
  EXPECT_EQ(config.schedule.type, "cosine");
  EXPECT_EQ(config.model.path, "/data/my models/llama");
  EXPECT_EQ(config.output.dir, "out/x=y");  // only the first '=' separates key and value
  EXPECT_EQ(config.data.seed, 18446744073709551615ULL);
  EXPECT_EQ(config.training.precision, "fp32");
  EXPECT_EQ(config.distributed.timeout_seconds, 30);
  EXPECT_EQ(config.model.init_seed, 7u);
  const TrainConfig yes =
      TrainConfig::from_yaml_text(kMinimal, "cfg.yaml", {"training.activation_checkpointing=True"});
  EXPECT_TRUE(yes.training.activation_checkpointing);
}

TEST(TrainConfig, OverridesCanProvideRequiredKeys) {
  const TrainConfig config = TrainConfig::from_yaml_text(
      "", "cfg.yaml", {"model.path=m", "context.target_length=4096", "data.path=d"});
  EXPECT_EQ(config.context.target_length, 4096);
  EXPECT_EQ(config.data.path, "d");
}

TEST(TrainConfig, MalformedOverrides) {
  expect_error(kMinimal, {"training.steps"}, {"override 'training.steps'", "no '='"});
  expect_error(kMinimal, {"steps=10"}, {"override 'steps=10'", "section.key=value"});
  expect_error(kMinimal, {".steps=10"}, {"section.key=value"});
  expect_error(kMinimal, {"training.=10"}, {"section.key=value"});
  expect_error(
      kMinimal, {"training.stepz=10"},
      {"override 'training.stepz=10'", "unknown key 'training.stepz'", "did you mean 'steps'?"});
  expect_error(kMinimal, {"trainig.steps=10"},
               {"unknown section 'trainig'", "did you mean 'training'?"});
  expect_error(kMinimal, {"training.lr=1e-4"}, {"did you mean 'optimizer.lr'?"});
  expect_error(kMinimal, {"training.steps.x=1"}, {"unknown key 'training.steps.x'"});
}

TEST(TrainConfig, StructureErrors) {
  const std::string base = kMinimal;
  expect_error(base + "trainig:\n  steps: 10\n", {},
               {"cfg.yaml:7", "unknown section 'trainig'", "did you mean 'training'?"});
  expect_error(base + "training:\n  step: 10\n", {},
               {"cfg.yaml:8", "unknown key 'training.step'", "did you mean 'steps'?"});
  expect_error(base + "training:\n  lr: 1e-4\n", {}, {"did you mean 'optimizer.lr'?"});
  expect_error(base + "training:\n  wibble: 1\n", {}, {"known keys in 'training': steps,"});
  expect_error(base + "steps: 10\n", {}, {"unknown section 'steps'", "inside 'training:'"});
  expect_error(base + "zzzzzz: 1\n", {}, {"known sections: model, context, data,"});
  expect_error(base + "training:\n  steps: 10\n  steps: 20\n", {},
               {"cfg.yaml:9", "key 'training.steps' appears twice", "first at line 8"});
  expect_error(base + "data:\n  seed: 1\n", {},
               {"section 'data' appears twice", "first at line 5"});
  expect_error(base + "training: 5\n", {}, {"section 'training' must be a mapping", "got '5'"});
  expect_error(base + "training: [1, 2]\n", {}, {"section 'training' must be a mapping"});
  expect_error(base + "[a, b]: 1\n", {}, {"section names must be plain words"});
  expect_error(base + "training:\n  [a]: 1\n", {}, {"keys in 'training' must be plain words"});
  expect_error("- model\n- data\n", {}, {"expected a mapping of sections", "got a list"});
  expect_error("just a string\n", {}, {"expected a mapping of sections"});
  expect_error(base + "---\nmodel: {path: x}\n", {}, {"expected one YAML document, found 2"});
}

TEST(TrainConfig, SyntaxErrorsGiveTheLine) {
  expect_error("model:\n  path: m\ntraining: [1, 2\n", {},
               {"cfg.yaml", "YAML syntax error at line"});
  expect_error("model:\n  path: m\n  config: 'x' y\n", {}, {"YAML syntax error at line 3"});
  expect_error("model:\n\tpath: m\n", {}, {"YAML syntax error"});
  // yaml-cpp refuses nesting deeper than its recursion guard; that is still our error type.
  expect_error(std::string(5000, '[') + std::string(5000, ']'), {}, {"cfg.yaml"});
}

TEST(TrainConfig, LoadReadsAFileAndNamesIt) {
  testing::ScratchDir scratch;
  testing::write_text(scratch / "run.yaml", std::string(kMinimal) + "training:\n  steps: 0\n");
  try {
    TrainConfig::load(scratch / "run.yaml");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find((scratch / "run.yaml").string() + ":8"),
              std::string::npos)
        << error.what();
  }
  testing::write_text(scratch / "ok.yaml", kMinimal);
  EXPECT_EQ(TrainConfig::load(scratch / "ok.yaml", {"training.steps=3"}).training.steps, 3);
  try {
    TrainConfig::load(scratch / "missing.yaml");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("missing.yaml"), std::string::npos);
  }
}

// Every key set to something other than its default, so a key to_yaml forgot cannot hide.
const char* kEverythingChanged = R"(
model:
  path: ""
  config: "configs/models/tiny-test.json"
  init_seed: 11
  init_std: 0.05
context:
  target_length: 16384
  original_length: 4096
  scaling: yarn
data:
  path: "data/my tokens: \"quoted\" # not a comment"
  seed: 12
training:
  steps: 77
  micro_batch_size: 3
  gradient_accumulation: 5
  sequence_length: 8000
  precision: fp16
  reduce_dtype: bf16
  activation_checkpointing: false
  context_parallel: 4
  fused_projections: false
  max_grad_norm: 0.30000000000000004
  seed: 13
optimizer:
  lr: 1.234567890123e-4
  beta1: 0.8
  beta2: 0.999
  eps: 1e-300
  weight_decay: 0.1
schedule:
  type: cosine
  warmup_steps: 7
  warmup_start_factor: 0.25
  min_lr_factor: 0.05
distributed:
  backend: nccl
  timeout_seconds: 99
output:
  dir: "out/\tweird\\dir/é"
  log_every: 5
  checkpoint_every: 50
  keep_checkpoints: 4
)";

void expect_same_fields(const TrainConfig& a, const TrainConfig& b) {
  EXPECT_EQ(a.model.path, b.model.path);
  EXPECT_EQ(a.model.config, b.model.config);
  EXPECT_EQ(a.model.init_seed, b.model.init_seed);
  EXPECT_EQ(a.model.init_std, b.model.init_std);
  EXPECT_EQ(a.context.target_length, b.context.target_length);
  EXPECT_EQ(a.context.original_length, b.context.original_length);
  EXPECT_EQ(a.context.scaling, b.context.scaling);
  EXPECT_EQ(a.data.path, b.data.path);
  EXPECT_EQ(a.data.seed, b.data.seed);
  EXPECT_EQ(a.training.steps, b.training.steps);
  EXPECT_EQ(a.training.micro_batch_size, b.training.micro_batch_size);
  EXPECT_EQ(a.training.gradient_accumulation, b.training.gradient_accumulation);
  EXPECT_EQ(a.training.sequence_length, b.training.sequence_length);
  EXPECT_EQ(a.training.precision, b.training.precision);
  EXPECT_EQ(a.training.reduce_dtype, b.training.reduce_dtype);
  EXPECT_EQ(a.training.activation_checkpointing, b.training.activation_checkpointing);
  EXPECT_EQ(a.training.context_parallel, b.training.context_parallel);
  EXPECT_EQ(a.training.fused_projections, b.training.fused_projections);
  EXPECT_EQ(a.training.max_grad_norm, b.training.max_grad_norm);  // bit-exact, not NEAR
  EXPECT_EQ(a.training.max_nonfinite_steps, b.training.max_nonfinite_steps);
  EXPECT_EQ(a.training.loss_spike_factor, b.training.loss_spike_factor);
  EXPECT_EQ(a.training.seed, b.training.seed);
  EXPECT_EQ(a.optimizer.lr, b.optimizer.lr);
  EXPECT_EQ(a.optimizer.beta1, b.optimizer.beta1);
  EXPECT_EQ(a.optimizer.beta2, b.optimizer.beta2);
  EXPECT_EQ(a.optimizer.eps, b.optimizer.eps);
  EXPECT_EQ(a.optimizer.weight_decay, b.optimizer.weight_decay);
  EXPECT_EQ(a.schedule.type, b.schedule.type);
  EXPECT_EQ(a.schedule.warmup_steps, b.schedule.warmup_steps);
  EXPECT_EQ(a.schedule.warmup_start_factor, b.schedule.warmup_start_factor);
  EXPECT_EQ(a.schedule.min_lr_factor, b.schedule.min_lr_factor);
  EXPECT_EQ(a.distributed.backend, b.distributed.backend);
  EXPECT_EQ(a.distributed.timeout_seconds, b.distributed.timeout_seconds);
  EXPECT_EQ(a.output.dir, b.output.dir);
  EXPECT_EQ(a.output.log_every, b.output.log_every);
  EXPECT_EQ(a.output.checkpoint_every, b.output.checkpoint_every);
  EXPECT_EQ(a.output.keep_checkpoints, b.output.keep_checkpoints);
  EXPECT_EQ(a.output.overwrite, b.output.overwrite);
  EXPECT_EQ(a.output.allow_config_changes, b.output.allow_config_changes);
  EXPECT_TRUE(a == b);
}

TEST(TrainConfig, ToYamlRoundTripsEveryField) {
  const TrainConfig original = TrainConfig::from_yaml_text(kEverythingChanged, "all.yaml");
  // Each field really differs from its default, so the comparison below proves it was written.
  TrainConfig defaults;
  EXPECT_NE(original.model.init_seed, defaults.model.init_seed);
  EXPECT_NE(original.training.fused_projections, defaults.training.fused_projections);
  EXPECT_EQ(original.data.path, "data/my tokens: \"quoted\" # not a comment");
  EXPECT_EQ(original.output.dir, "out/\tweird\\dir/\xc3\xa9");
  const std::string yaml = original.to_yaml();
  const TrainConfig reloaded = TrainConfig::from_yaml_text(yaml, "saved.yaml");
  expect_same_fields(original, reloaded);
  EXPECT_EQ(reloaded.to_yaml(), yaml);  // stable: saving twice gives the same file
}

TEST(TrainConfig, ToYamlWritesEveryKeyIncludingDefaults) {
  const TrainConfig config = TrainConfig::from_yaml_text(kMinimal, "cfg.yaml");
  const std::string yaml = config.to_yaml();
  const std::vector<std::string> keys = TrainConfig::keys();
  EXPECT_EQ(keys.size(), 47u);
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size());
  for (const std::string& key : keys) {
    const std::string leaf = key.substr(key.find('.') + 1);
    EXPECT_NE(yaml.find("\n  " + leaf + ": "), std::string::npos) << key;
  }
  EXPECT_NE(yaml.find("  lr: 2e-05"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("  max_grad_norm: 1.0"), std::string::npos) << yaml;
  expect_same_fields(config, TrainConfig::from_yaml_text(yaml, "saved.yaml"));
}

TEST(TrainConfig, AwkwardStringsRoundTrip) {
  for (const std::string& path :
       {std::string("null"), std::string("true"), std::string("123"), std::string(" lead"),
        std::string("a: b"), std::string("- x"), std::string("{a}"), std::string("~"),
        std::string("x\ny"), std::string("back\\slash"), std::string("'single'"),
        std::string("\x01\x7f"), std::string("#hash"), std::string("日本語")}) {
    TrainConfig config = TrainConfig::from_yaml_text(kMinimal, "cfg.yaml");
    config.data.path = path;
    const TrainConfig reloaded = TrainConfig::from_yaml_text(config.to_yaml(), "saved.yaml");
    EXPECT_EQ(reloaded.data.path, path);
  }
}

TEST(TrainConfig, EqualityComparesEveryField) {
  const TrainConfig base = TrainConfig::from_yaml_text(kMinimal, "cfg.yaml");
  EXPECT_TRUE(base == TrainConfig::from_yaml_text(kMinimal, "other.yaml"));
  for (const char* change :
       {"output.keep_checkpoints=3", "model.init_seed=1", "training.activation_checkpointing=false",
        "optimizer.eps=2e-8", "distributed.backend=gloo"}) {
    EXPECT_TRUE(base != TrainConfig::from_yaml_text(kMinimal, "cfg.yaml", {change})) << change;
  }
}

TEST(TrainConfig, ValidateChecksConfigsBuiltInCode) {
  TrainConfig config;
  config.model.path = "m";
  config.data.path = "d";
  config.context.target_length = 1024;
  EXPECT_NO_THROW(config.validate());
  config.optimizer.beta2 = 1.0;
  try {
    config.validate("built in test");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("built in test: optimizer.beta2"), std::string::npos)
        << error.what();
  }
}

// ---- The shipped recipes -----------------------------------------------------------------------

std::vector<std::filesystem::path> recipe_files() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(testing::source_dir() / "configs")) {
    if (entry.is_regular_file() &&
        (entry.path().extension() == ".yaml" || entry.path().extension() == ".yml")) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(Recipes, EveryYamlUnderConfigsLoads) {
  const std::vector<std::filesystem::path> files = recipe_files();
  EXPECT_GE(files.size(), 5u);
  for (const std::filesystem::path& file : files) {
    SCOPED_TRACE(file.string());
    TrainConfig config;
    ASSERT_NO_THROW(config = TrainConfig::load(file));
    // The model a recipe names for random init exists and parses.
    if (config.model.path.empty()) {
      const LlamaConfig model = LlamaConfig::from_file(testing::source_dir() / config.model.config);
      // Extension recipes go past the model's window; pretraining recipes train at it.
      if (config.context.scaling == "none") {
        EXPECT_EQ(config.context.target_length, model.max_position_embeddings);
      } else {
        EXPECT_GT(config.context.target_length, model.max_position_embeddings);
      }
    }
    // The effective config saved next to a run reloads to the same config.
    expect_same_fields(config, TrainConfig::from_yaml_text(config.to_yaml(), "saved.yaml"));
  }
}

TrainConfig recipe(const std::string& name) {
  return TrainConfig::load(testing::source_dir() / "configs" / name);
}

void expect_paper_recipe(const TrainConfig& config) {
  EXPECT_EQ(config.context.scaling, "linear");
  EXPECT_EQ(config.context.original_length, 0);
  EXPECT_EQ(config.effective_sequence_length(), config.context.target_length);
  EXPECT_EQ(config.training.steps, 1000);
  EXPECT_EQ(config.training.precision, "bf16");
  EXPECT_TRUE(config.training.activation_checkpointing);
  EXPECT_DOUBLE_EQ(config.optimizer.lr, 2e-5);
  EXPECT_DOUBLE_EQ(config.optimizer.beta1, 0.9);
  EXPECT_DOUBLE_EQ(config.optimizer.beta2, 0.95);
  EXPECT_DOUBLE_EQ(config.optimizer.weight_decay, 0.0);
  EXPECT_EQ(config.schedule.type, "constant");
  EXPECT_EQ(config.schedule.warmup_steps, 20);
  EXPECT_DOUBLE_EQ(config.schedule.warmup_start_factor, 0.1);
  EXPECT_EQ(config.data.path, "data/pile-tokens");
  EXPECT_EQ(config.training.micro_batch_size, 1);
}

TEST(Recipes, PaperRecipesMatchSection3_1) {
  const TrainConfig pi_7b_8k = recipe("pi-7b-8k.yaml");
  expect_paper_recipe(pi_7b_8k);
  EXPECT_EQ(pi_7b_8k.model.path, "/models/llama-7b-hf");
  EXPECT_EQ(pi_7b_8k.context.target_length, 8192);
  EXPECT_EQ(pi_7b_8k.global_batch_size(32), 64);  // 32 GPUs, as the paper

  const TrainConfig pi_13b_8k = recipe("pi-13b-8k.yaml");
  expect_paper_recipe(pi_13b_8k);
  EXPECT_EQ(pi_13b_8k.model.path, "/models/llama-13b-hf");
  EXPECT_EQ(pi_13b_8k.context.target_length, 8192);
  EXPECT_EQ(pi_13b_8k.global_batch_size(32), 64);

  // Beyond 8192 the paper's global batch is 128.
  for (const auto& [name, target] :
       {std::pair{"pi-7b-16k.yaml", 16384}, {"pi-7b-32k.yaml", 32768}}) {
    const TrainConfig config = recipe(name);
    expect_paper_recipe(config);
    EXPECT_EQ(config.context.target_length, target);
    EXPECT_EQ(config.global_batch_size(32), 128);
  }
}

TEST(Recipes, DemoTinyExtendsTheTinyModelFourfold) {
  const TrainConfig demo = recipe("demo-tiny.yaml");
  EXPECT_TRUE(demo.model.path.empty());
  EXPECT_EQ(demo.model.config, "configs/models/tiny-test.json");
  EXPECT_EQ(demo.context.target_length, 256);
  EXPECT_EQ(demo.training.steps, 20);
  EXPECT_EQ(demo.training.precision, "fp32");
  // The demo runs out of the box: its corpus ships with the repository.
  EXPECT_TRUE(std::filesystem::is_regular_file(testing::source_dir() / demo.data.path))
      << demo.data.path;
  EXPECT_EQ(demo.output.dir, "out/demo-tiny");
  const LlamaConfig model = LlamaConfig::from_file(testing::source_dir() / demo.model.config);
  EXPECT_EQ(demo.context.target_length / model.max_position_embeddings, 4);
}

TEST(Recipes, ModelConfigsHaveTheLlamaShapes) {
  const auto model = [](const std::string& name) {
    return LlamaConfig::from_file(testing::source_dir() / "configs" / "models" / name);
  };
  const LlamaConfig llama_7b = model("llama-7b.json");
  EXPECT_EQ(llama_7b.max_position_embeddings, 2048);
  EXPECT_EQ(llama_7b.num_parameters(), 6738415616);  // LLaMA-7B's published count
  const LlamaConfig llama_13b = model("llama-13b.json");
  EXPECT_EQ(llama_13b.hidden_size, 5120);
  EXPECT_EQ(llama_13b.num_parameters(), 13015864320);  // LLaMA-13B's published count
  const LlamaConfig tiny_20m = model("tiny-20m.json");
  EXPECT_EQ(tiny_20m.kv_groups(), 3);
  EXPECT_TRUE(tiny_20m.tie_word_embeddings);
  EXPECT_GT(tiny_20m.num_parameters(), 10'000'000);
  EXPECT_LT(tiny_20m.num_parameters(), 25'000'000);
  const LlamaConfig tiny_test = model("tiny-test.json");
  EXPECT_EQ(tiny_test.vocab_size, 256);
  EXPECT_EQ(tiny_test.head_dim, 16);
  EXPECT_EQ(tiny_test.max_position_embeddings, 64);
}

// ---- Fuzz
// ----------------------------------------------------------------------------------------

// Damages `text` the way hand edits and bad merges do: stray characters, lost or repeated lines,
// truncation, tabs for indentation.
std::string corrupt(std::string text, std::mt19937& random) {
  static const std::string kNasty = ":[]{}\"'\t\n-#&*!|>%@`?,\\ 0123456789.eE+xyz\x01\xff";
  const int edits = 1 + static_cast<int>(random() % 4);
  for (int edit = 0; edit < edits && !text.empty(); ++edit) {
    const size_t at = random() % text.size();
    switch (random() % 7) {
      case 0:
        text.erase(at, 1 + random() % 8);
        break;
      case 1:
        text.insert(at, 1, kNasty[random() % kNasty.size()]);
        break;
      case 2:
        text[at] = kNasty[random() % kNasty.size()];
        break;
      case 3:
        text.resize(at);
        break;
      case 4: {  // repeat a line elsewhere
        const size_t start = text.rfind('\n', at);
        const size_t line_start = start == std::string::npos ? 0 : start + 1;
        const size_t end = text.find('\n', at);
        const std::string line = text.substr(line_start, end - line_start) + "\n";
        text.insert(random() % text.size(), line);
        break;
      }
      case 5: {  // re-indent a line
        const size_t start = text.rfind('\n', at);
        text.insert(start == std::string::npos ? 0 : start + 1, random() % 2 ? "\t" : "   ");
        break;
      }
      default:
        text.insert(at, random() % 2 ? "\n  x: [" : "\n- ");
        break;
    }
  }
  return text;
}

TEST(TrainConfigFuzz, CorruptedRecipesOnlyRaiseLctrainErrors) {
  std::vector<std::string> texts = {kMinimal, kEverythingChanged};
  for (const auto& file : recipe_files()) texts.push_back(testing::read_text(file));
  std::mt19937 random(20230615);
  int loaded = 0;
  int rejected = 0;
  for (int iteration = 0; iteration < 2000; ++iteration) {
    const std::string text = corrupt(texts[iteration % texts.size()], random);
    try {
      TrainConfig::from_yaml_text(text, "fuzz.yaml");
      ++loaded;
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("fuzz.yaml"), std::string::npos) << error.what();
      ++rejected;
    } catch (const std::exception& error) {
      ADD_FAILURE() << "non-lctrain exception " << error.what() << " for:\n" << text;
    }
  }
  // Both outcomes must actually occur, or the corruptions are not exercising anything.
  EXPECT_GT(rejected, 500);
  EXPECT_GT(loaded, 50);
}

// yaml-cpp 0.7 never returns from these, or allocates until the process dies (found by the fuzz
// test above): a ',' outside any flow collection after a complete top-level node. They must be
// errors naming the line.
TEST(TrainConfigFuzz, StrayCommasAreErrorsNotHangs) {
  const std::vector<std::pair<std::string, int>> cases = {
      {",", 1},
      {"# recipe\n\n   , e.g. training.steps=10", 3},
      {"a: 1\n---\n, b", 3},
      {"--- ,", 1},
      {"a: 1\n...\n,", 3},
      {"- a\n# a comment\n, b", 3},  // the recipe comment that lost its '#'
      {"[a]\n  , b", 2},
      {"[a] , b", 1},
      {"\"x\" # c\n\n, b", 3},
      {"!!str \"x\" , b", 1},
      {"a: 1\n, b\n", 2}};
  for (const auto& [text, line] : cases) {
    expect_error(text, {}, {"cfg.yaml", "line " + std::to_string(line), "','"});
  }
  // Commas inside quotes, flow collections, plain and block scalars are the parser's to judge.
  for (const char* text : {"model: {config: \"a,b\"}\n", "---,\n", "model:\n  config: a, b\n",
                           "model:\n  config: |\n    , b\n", "model: {config: [1,\n , 2]}\n",
                           "model:\n  config: it's 'fine', really\n"}) {
    EXPECT_EQ(error_of(text).find("outside a [list]"), std::string::npos) << text;
  }
}

TEST(TrainConfigFuzz, RandomOverridesOnlyRaiseLctrainErrors) {
  const std::vector<std::string> keys = TrainConfig::keys();
  const std::vector<std::string> values = {"",       "0",      "-1",    "1.5", "abc", "true",
                                           "[1, 2]", "{a: 1}", "1e400", "=",   "~",   "null",
                                           "\"q\"",  "10",     "fp32",  "#"};
  std::mt19937 random(7);
  for (int iteration = 0; iteration < 1000; ++iteration) {
    std::string key = keys[random() % keys.size()];
    if (random() % 5 == 0) key.erase(random() % key.size(), 1);  // occasionally a typo
    const std::string text =
        random() % 10 == 0 ? key : key + "=" + values[random() % values.size()];
    try {
      TrainConfig::from_yaml_text(kMinimal, "fuzz.yaml", {text});
    } catch (const Error&) {
    } catch (const std::exception& error) {
      ADD_FAILURE() << "non-lctrain exception " << error.what() << " for override " << text;
    }
  }
}

}  // namespace
}  // namespace lctrain
