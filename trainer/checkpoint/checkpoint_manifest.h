// The manifest of a sharded checkpoint: what the job had done (train_state, lr_scheduler,
// dataloader), how the model was cut into flat units and shards (so any world size can read it
// back), and each rank file's size and checksum. Written last, it is what makes a folder a
// checkpoint: a folder without a valid manifest is never loaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lctrain::checkpoint {

inline constexpr int kFormatVersion = 1;

struct ParameterLayout {
  std::string name;  // Hugging Face tensor name
  std::vector<int64_t> shape;
  int64_t offset = 0;  // elements into the unit's flat buffer
};

struct UnitLayout {
  std::string name;
  int64_t numel = 0;         // real elements
  int64_t padded_numel = 0;  // a multiple of the writing job's world size
  std::vector<ParameterLayout> parameters;
};

struct ShardFile {
  std::string name;  // relative to the checkpoint folder
  uint64_t bytes = 0;
  std::string xxh3;  // 16 hex digits of XXH3-64 over the whole file
};

struct Manifest {
  int format_version = kFormatVersion;
  int world_size = 1;
  // train_state
  int64_t step = 0;  // optimizer steps completed
  int64_t tokens_seen = 0;
  double loss = 0.0;  // of the last step (NaN when it was not finite: null in JSON)
  // optimizer: AdamW updates taken (fewer than `step` when fp16 overflows skipped some)
  int64_t optimizer_steps = 0;
  // lr_scheduler: a pure function of the step; the value is kept for people reading it
  double lr = 0.0;
  // grad_scaler (fp16 dynamic loss scaling; 1 and 0 otherwise)
  double loss_scale = 1.0;
  int64_t loss_scale_growth_tracker = 0;
  // dataloader: the next global sequence index, the shuffle seed and the data it indexes
  int64_t sequences_seen = 0;
  uint64_t data_seed = 0;
  std::string data_path;
  // model: the extended config.json (L', rope_scaling), where it came from, its flat layout
  nlohmann::json model_config = nlohmann::json::object();
  std::string base_model;  // model.path of the run ("" = random init)
  std::vector<UnitLayout> units;
  std::vector<ShardFile> files;  // one per rank, rank order
  std::string config_yaml;       // the run's effective config
  // step_guard: the recent good losses the loss-spike rule judges against, the steps rejected so
  // far, and whether every parameter and optimizer value was checked finite before writing.
  std::vector<double> recent_losses;
  int64_t rejected_steps = 0;
  bool values_finite = true;

  nlohmann::json to_json() const;
  // Validates every field; errors name `source` and the key.
  static Manifest from_json(const nlohmann::json& json, const std::string& source);
  static Manifest read(const std::filesystem::path& checkpoint_dir);

  // The file rank r of the writing job wrote.
  static std::string shard_file_name(int rank, int world_size);
};

}  // namespace lctrain::checkpoint
