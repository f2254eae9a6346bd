#include "support/training_job.h"

#include <gtest/gtest.h>

#include <sstream>

#include "io/safetensors.h"
#include "util/json_fields.h"

namespace lctrain::testing {

TrainingJob::TrainingJob(const ScratchDir& scratch) : scratch_(scratch) {
  write_text(scratch_ / "model.json",
             R"({"vocab_size": 48, "hidden_size": 32, "intermediate_size": 64,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "max_position_embeddings": 8, "tie_word_embeddings": false})");
  std::string tokens;
  for (int i = 0; i < 4000; ++i) tokens += std::to_string((i * 7 + i / 13) % 48) + " ";
  write_text(scratch_ / "tokens.txt", tokens);
  write_text(scratch_ / "run.yaml",
             "model: {config: " + (scratch_ / "model.json").string() +
                 ", init_seed: 5}\n"
                 "context: {target_length: 32}\n"
                 "data: {path: " +
                 (scratch_ / "tokens.txt").string() +
                 ", seed: 3}\n"
                 "training: {steps: 20, micro_batch_size: 2, precision: fp32, device: cpu,\n"
                 "           activation_checkpointing: false}\n"
                 "optimizer: {lr: 0.003, weight_decay: 0.1}\n"
                 "schedule: {warmup_steps: 3}\n"
                 "output: {log_every: 1, checkpoint_every: 5, keep_checkpoints: 3}\n");
}

std::string TrainingJob::train_arguments(const std::string& out, const std::string& extra) const {
  return "train --config " + quoted(scratch_ / "run.yaml") +
         " output.dir=" + quoted(scratch_ / out) + " " + extra;
}

std::string TrainingJob::command(const std::string& out, int ranks,
                                 const std::string& extra) const {
  return quoted(lctrain_binary()) + " launch --nproc-per-node " + std::to_string(ranks) + " -- " +
         train_arguments(out, extra);
}

CommandResult TrainingJob::run(const std::string& out, int ranks, const std::string& extra) const {
  return run_command(command(out, ranks, extra));
}

std::map<int64_t, double> TrainingJob::losses(const std::string& out) const {
  std::map<int64_t, double> result;
  std::istringstream lines(read_text(scratch_ / out / "metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const auto record = parse_json(line, "metrics.jsonl");
    result[record.at("step").get<int64_t>()] = record.at("loss").get<double>();
  }
  return result;
}

std::map<std::string, torch::Tensor> TrainingJob::final_tensors(const std::string& out) const {
  const auto file = io::SafetensorsFile::open(scratch_ / out / "final" / "model.safetensors");
  std::map<std::string, torch::Tensor> result;
  for (const auto& name : file.names()) result[name] = file.tensor(name);
  return result;
}

::testing::AssertionResult tensors_equal(const std::map<std::string, torch::Tensor>& a,
                                         const std::map<std::string, torch::Tensor>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "tensor counts differ";
  for (const auto& [name, tensor] : a) {
    const auto other = b.find(name);
    if (other == b.end()) return ::testing::AssertionFailure() << name << " missing";
    if (!torch::equal(tensor, other->second)) {
      return ::testing::AssertionFailure()
             << name << " differs by up to " << (tensor - other->second).abs().max().item<double>();
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace lctrain::testing
