#include "train/run_folder.h"

#include <chrono>
#include <functional>

#include "checkpoint/checkpoint_store.h"
#include "util/error.h"
#include "util/logging.h"

namespace lctrain {
namespace fs = std::filesystem;
namespace {

constexpr const char* kLockFile = ".lctrain.lock";

// What a folder holds of an earlier run (checkpoints, metrics, final model), for start-over.
std::vector<fs::path> run_files(const fs::path& dir) {
  std::vector<fs::path> found;
  for (const char* name : {"checkpoints", "metrics.jsonl", "final", "config.yaml"}) {
    if (fs::exists(dir / name)) found.push_back(dir / name);
  }
  return found;
}

bool holds_a_run(const fs::path& dir) {
  return !checkpoint::list(dir / "checkpoints").empty() || fs::exists(dir / "final");
}

std::string utc_stamp() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

// Moves the earlier run's files into <dir>/previous-<time>/: nothing is deleted.
void move_run_aside(const fs::path& dir) {
  const fs::path aside = dir / ("previous-" + utc_stamp());
  fs::create_directory(aside);
  for (const fs::path& file : run_files(dir)) fs::rename(file, aside / file.filename());
  log()->warn("output.overwrite: the earlier run in {} was moved to {}", dir.string(),
              aside.string());
}

// Runs `body` on rank 0 and makes its failure every rank's, with rank 0's message.
void on_main_rank_for_all(Communicator& communicator, const std::function<void()>& body) {
  std::string problem;
  if (communicator.rank() == 0) {
    try {
      body();
    } catch (const std::exception& error) {
      problem = error.what();
    }
  }
  if (communicator.sum_over_ranks(problem.empty() ? 0.0 : 1.0) == 0.0) return;
  if (!problem.empty()) throw Error("{}", problem);
  throw Error("rank 0 could not claim the run folder (its message says why)");
}

uint64_t text_hash(const std::string& text) {
  return static_cast<uint64_t>(std::hash<std::string>{}(text));
}

}  // namespace

RunFolderClaim::RunFolderClaim(const TrainConfig& config, Communicator& communicator) {
  const fs::path dir = config.output.dir;
  on_main_rank_for_all(communicator, [&] {
    fs::create_directories(dir);
    std::string holder;
    lock_ = FileLock::try_acquire(dir / kLockFile, holder);
    LCTRAIN_CHECK(lock_.has_value(),
                  "{} is in use by another lctrain job ({}); wait for it to end, or give this "
                  "run another output.dir",
                  dir.string(), holder.empty() ? std::string("holder unknown") : holder);
    if (!lock_->previous_holder().empty()) {
      log()->warn("{}: taking over the lock of a job that ended without releasing it ({})",
                  dir.string(), lock_->previous_holder());
    }
    if (config.output.resume == "never" && holds_a_run(dir)) {
      LCTRAIN_CHECK(config.output.overwrite,
                    "{} holds an earlier run (checkpoints or a final model) and "
                    "output.resume=never: resume it with output.resume=auto, give this run "
                    "another output.dir, or start over with output.overwrite=true (the earlier "
                    "run is moved into {}/previous-<time>/)",
                    dir.string(), dir.string());
      move_run_aside(dir);
    }
    checkpoint::remove_unfinished(dir / "checkpoints");
  });
}

void check_ranks_agree(const TrainConfig& config, Communicator& communicator) {
  const int world = communicator.world_size();
  if (world == 1) return;
  const auto values = config.values();
  const auto count = static_cast<int64_t>(values.size());
  auto mine = torch::empty({count}, torch::kInt64);
  for (int64_t index = 0; index < count; ++index) {
    mine[index] = static_cast<int64_t>(text_hash(values[index].second));
  }
  auto all = torch::empty({count * world}, torch::kInt64);
  communicator.all_gather(all, mine);
  std::string differences;
  for (int64_t index = 0; index < count; ++index) {
    std::vector<int> ranks;
    for (int rank = 1; rank < world; ++rank) {
      if (all[rank * count + index].item<int64_t>() != all[index].item<int64_t>()) {
        ranks.push_back(rank);
      }
    }
    if (ranks.empty()) continue;
    differences += fmt::format("{}{} (rank 0: {}; differs on rank(s) {})",
                               differences.empty() ? "" : ", ", values[index].first,
                               communicator.rank() == 0 ? values[index].second : "see rank 0",
                               fmt::join(ranks, ","));
  }
  LCTRAIN_CHECK(differences.empty(),
                "the ranks of this job were started with different configs: {}. Give every "
                "node the same recipe and overrides",
                differences);
}

void check_resume_compatible(const checkpoint::Manifest& saved, const TrainConfig& config,
                             const LlamaConfig& model_config, int64_t global_batch,
                             bool main_rank) {
  std::vector<std::string> altering;
  const nlohmann::json now = model_config.to_json();
  for (const char* key : {"max_position_embeddings", "rope_scaling", "rope_theta", "hidden_size",
                          "num_hidden_layers", "vocab_size"}) {
    const auto before = saved.model_config.contains(key) ? saved.model_config.at(key) : nullptr;
    const auto after = now.contains(key) ? now.at(key) : nullptr;
    if (before != after) {
      altering.push_back(fmt::format("model {}: {} -> {}", key, before.dump(), after.dump()));
    }
  }
  std::optional<TrainConfig> before;
  try {
    if (!saved.config_yaml.empty()) {
      before = TrainConfig::from_yaml_text(saved.config_yaml, "the checkpoint's config.yaml");
    }
  } catch (const Error& error) {
    if (main_rank) log()->warn("cannot compare with the checkpoint's config: {}", error.what());
  }
  std::vector<std::string> changed;
  if (before) {
    if (before->effective_sequence_length() != config.effective_sequence_length()) {
      altering.push_back(fmt::format("sequence length: {} -> {}",
                                     before->effective_sequence_length(),
                                     config.effective_sequence_length()));
    }
    const int64_t saved_batch = before->global_batch_size(saved.world_size);
    if (saved_batch != global_batch) {
      altering.push_back(
          fmt::format("global batch: {} -> {} sequences per step (micro_batch_size x "
                      "gradient_accumulation x ranks; keep it when changing the number of ranks)",
                      saved_batch, global_batch));
    }
    const auto old_values = before->values();
    const auto new_values = config.values();
    for (size_t index = 0; index < new_values.size(); ++index) {
      const auto& [key, value] = new_values[index];
      if (key.rfind("output.", 0) == 0 || old_values[index].second == value) continue;
      changed.push_back(fmt::format("{}: {} -> {}", key, old_values[index].second, value));
    }
  }
  if (!altering.empty()) {
    const std::string list = fmt::format("{}", fmt::join(altering, "; "));
    LCTRAIN_CHECK(config.output.allow_config_changes,
                  "resuming would change what the run computes: {}. Resume with the "
                  "checkpoint's settings, start a new run in another output.dir, or set "
                  "output.allow_config_changes=true if the change is intended",
                  list);
    if (main_rank) log()->warn("resuming with changes to what the run computes: {}", list);
  }
  if (main_rank && !changed.empty()) {
    log()->info("resuming with changed settings: {}", fmt::join(changed, "; "));
  }
}

}  // namespace lctrain
