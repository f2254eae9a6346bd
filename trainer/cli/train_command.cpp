// `lctrain train --config FILE.yaml [dotted.key=value ...]`: the fine-tuning job (one rank of it
// when started by `lctrain launch`, torchrun or srun).
#include <filesystem>

#include "cli/commands.h"
#include "train/train_config.h"
#include "train/trainer.h"
#include "util/error.h"

namespace lctrain::cli {

Action add_train_command(CLI::App& app) {
  struct Options {
    std::string config_file;
    std::vector<std::string> overrides;
    std::string resume;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command =
      app.add_subcommand("train", "Fine-tune (or pretrain) a LLaMA, sharded over ranks");
  command->add_option("--config", options->config_file, "training recipe (YAML)")->required();
  command->add_option("overrides", options->overrides,
                      "dotted.key=value overrides, e.g. training.steps=10 optimizer.lr=1e-4");
  command->add_option("--resume", options->resume,
                      "checkpoint folder to resume from (default: the newest good checkpoint in "
                      "output.dir; same as output.resume=PATH)");
  return [options] {
    // A folder opens and reads as empty YAML, which would then fail far from the real mistake.
    LCTRAIN_CHECK(!std::filesystem::is_directory(options->config_file),
                  "--config {} is a folder; it takes a training recipe file (YAML), e.g. "
                  "configs/pi-7b-8k.yaml",
                  options->config_file);
    std::vector<std::string> overrides = options->overrides;
    if (!options->resume.empty()) overrides.push_back("output.resume=" + options->resume);
    const TrainConfig config = TrainConfig::load(options->config_file, overrides);
    run_training(config);
  };
}

}  // namespace lctrain::cli
