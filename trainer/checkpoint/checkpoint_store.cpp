#include "checkpoint/checkpoint_store.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fcntl.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include "io/safetensors.h"
#include "util/error.h"
#include "util/logging.h"

namespace lctrain::checkpoint {
namespace fs = std::filesystem;
namespace {

const std::regex kCheckpointName(R"(step-(\d{8,}))");
constexpr const char* kTempPrefix = ".tmp-";

std::string folder_name(int64_t step) { return fmt::format("step-{:08d}", step); }

void fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // durability only; the data is already written
  ::fsync(fd);
  ::close(fd);
}

void write_text_durably(const fs::path& path, const std::string& text) {
  io::detail::AtomicFileWriter writer(path);
  writer.write(text.data(), text.size());
  writer.commit();
}

// The tensor names of unit `name` in a rank file, by component.
std::string model_key(const std::string& unit) { return "model." + unit; }
std::string exp_avg_key(const std::string& unit) { return "optimizer.exp_avg." + unit; }
std::string exp_avg_sq_key(const std::string& unit) { return "optimizer.exp_avg_sq." + unit; }
constexpr const char* kRngKey = "rng.cpu";

std::vector<UnitLayout> layouts_of(const std::vector<FlatParamUnit*>& units) {
  std::vector<UnitLayout> result;
  for (const FlatParamUnit* unit : units) {
    UnitLayout layout{unit->name(), unit->numel(), unit->padded_numel(), {}};
    for (const FlatParamEntry& entry : unit->entries()) {
      layout.parameters.push_back({entry.name, entry.shape, entry.offset});
    }
    result.push_back(std::move(layout));
  }
  return result;
}

uint64_t xxh3_of_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LCTRAIN_CHECK(in.good(), "cannot read '{}'", path.string());
  XXH3_state_t* state = XXH3_createState();
  LCTRAIN_CHECK(state != nullptr, "out of memory hashing '{}'", path.string());
  XXH3_64bits_reset(state);
  std::vector<char> buffer(size_t{8} << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    XXH3_64bits_update(state, buffer.data(), static_cast<size_t>(in.gcount()));
  }
  const bool failed = in.bad();
  const uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  LCTRAIN_CHECK(!failed, "error reading '{}'", path.string());
  return digest;
}

std::string hex(uint64_t value) { return fmt::format("{:016x}", value); }

torch::Tensor cpu_rng_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void restore_cpu_rng_state(const torch::Tensor& state) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// Test hook: widens the window between the shard files and the manifest (of the checkpoint of
// step LCTRAIN_TEST_CHECKPOINT_PAUSE_STEP, or of every one), so that a test can kill the job while
// a checkpoint is half written.
void pause_for_tests(int64_t step) {
  const char* pause = std::getenv("LCTRAIN_TEST_CHECKPOINT_PAUSE_MS");
  const char* at_step = std::getenv("LCTRAIN_TEST_CHECKPOINT_PAUSE_STEP");
  if (pause != nullptr && (at_step == nullptr || std::atoll(at_step) == step)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoll(pause)));
  }
}

// A checkpoint rotation may count: readable, and its values checked finite when written.
bool counts_as_good(const fs::path& dir) {
  try {
    return Manifest::read(dir).values_finite;
  } catch (const Error&) {
    return false;
  }
}

// Keeps the newest `keep` good checkpoints; anything else older than the oldest of them goes.
// Rotation never removes a good checkpoint to make room for a bad one.
void prune(const fs::path& root, int64_t keep) {
  int64_t good_kept = 0;
  for (const fs::path& folder : list(root)) {
    if (good_kept < std::max<int64_t>(keep, 1)) {
      if (counts_as_good(folder)) ++good_kept;
      continue;
    }
    std::error_code ignored;
    fs::remove_all(folder, ignored);
    log()->info("removed old checkpoint {}", folder.string());
  }
}

// Whether every value this rank would write (parameter shards, AdamW moments) is finite; one
// reduction on the device and one host read per checkpoint.
bool values_are_finite(const std::vector<FlatParamUnit*>& units, const ShardedAdamW& optimizer) {
  std::vector<torch::Tensor> checks;
  for (size_t index = 0; index < units.size(); ++index) {
    checks.push_back(torch::isfinite(units[index]->shard().detach()).all());
    checks.push_back(torch::isfinite(optimizer.exp_avg(index)).all());
    checks.push_back(torch::isfinite(optimizer.exp_avg_sq(index)).all());
  }
  return checks.empty() || torch::stack(checks).all().item<bool>();
}

void check_layout(const Manifest& manifest, const std::vector<FlatParamUnit*>& units,
                  const fs::path& dir) {
  LCTRAIN_CHECK(manifest.units.size() == units.size(),
                "checkpoint {} holds {} units, this model has {}: not the same model", dir.string(),
                manifest.units.size(), units.size());
  for (size_t index = 0; index < units.size(); ++index) {
    const UnitLayout& saved = manifest.units[index];
    const FlatParamUnit& unit = *units[index];
    LCTRAIN_CHECK(saved.name == unit.name() && saved.numel == unit.numel() &&
                      saved.parameters.size() == unit.entries().size(),
                  "checkpoint {}: unit {} ({} elements) does not match this model's {} ({})",
                  dir.string(), saved.name, saved.numel, unit.name(), unit.numel());
    for (size_t p = 0; p < saved.parameters.size(); ++p) {
      const FlatParamEntry& entry = unit.entries()[p];
      LCTRAIN_CHECK(
          saved.parameters[p].name == entry.name && saved.parameters[p].shape == entry.shape,
          "checkpoint {}: tensor {} does not match this model's {}", dir.string(),
          saved.parameters[p].name, entry.name);
    }
  }
}

// Reads elements [begin, begin + count) of a unit's flat buffer (the checkpoint's padding
// layout) from the shards that hold them.
class ShardReader {
 public:
  ShardReader(fs::path dir, const Manifest& manifest) : dir_(std::move(dir)), manifest_(manifest) {}

  torch::Tensor range(const std::string& key, size_t unit_index, int64_t begin, int64_t count) {
    const UnitLayout& unit = manifest_.units.at(unit_index);
    const int64_t shard_numel = unit.padded_numel / manifest_.world_size;
    auto result = torch::zeros({count}, torch::kFloat32);
    // Only real elements are read; padding stays zero.
    const int64_t end = std::min(begin + count, unit.numel);
    for (int64_t position = begin; position < end;) {
      const int rank = static_cast<int>(position / shard_numel);
      const int64_t within = position % shard_numel;
      const int64_t take = std::min(shard_numel - within, end - position);
      const torch::Tensor shard = shard_tensor(rank, key, shard_numel);
      result.narrow(0, position - begin, take).copy_(shard.narrow(0, within, take));
      position += take;
    }
    return result;
  }

  io::SafetensorsFile& file(int rank) {
    auto found = files_.find(rank);
    if (found == files_.end()) {
      found = files_.emplace(rank, io::SafetensorsFile::open(dir_ / manifest_.files.at(rank).name))
                  .first;
    }
    return found->second;
  }

 private:
  torch::Tensor shard_tensor(int rank, const std::string& key, int64_t shard_numel) {
    const auto cache_key = std::make_pair(rank, key);
    auto found = cache_.find(cache_key);
    if (found != cache_.end()) return found->second;
    io::SafetensorsFile& source = file(rank);
    const io::TensorInfo& info = source.info(key);
    LCTRAIN_CHECK(info.dtype == torch::kFloat32 && info.shape == std::vector<int64_t>{shard_numel},
                  "{}: tensor {} should be float32 [{}]", source.path().string(), key, shard_numel);
    cache_.clear();  // one shard at a time: reading is sequential per unit
    return cache_.emplace(cache_key, source.tensor(key)).first->second;
  }

  fs::path dir_;
  const Manifest& manifest_;
  std::map<int, io::SafetensorsFile> files_;
  std::map<std::pair<int, std::string>, torch::Tensor> cache_;
};

}  // namespace

std::string file_xxh3(const fs::path& path) { return hex(xxh3_of_file(path)); }

void remove_unfinished(const fs::path& root) {
  std::error_code error;
  if (!fs::is_directory(root, error)) return;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.path().filename().string().rfind(kTempPrefix, 0) != 0) continue;
    fs::remove_all(entry.path());
    log()->info("removed {}, left by a checkpoint that was not finished", entry.path().string());
  }
}

std::vector<fs::path> list(const fs::path& root) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code error;
  if (!fs::is_directory(root, error)) return {};
  for (const auto& entry : fs::directory_iterator(root, error)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, match, kCheckpointName)) {
      found.emplace_back(std::stoll(match[1].str()), entry.path());
    }
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<fs::path> result;
  for (auto& [step, path] : found) result.push_back(std::move(path));
  return result;
}

fs::path save(const fs::path& root, JobState job, const std::vector<FlatParamUnit*>& units,
              const ShardedAdamW& optimizer, Communicator& communicator, int64_t keep) {
  const auto started = std::chrono::steady_clock::now();
  const int rank = communicator.rank();
  const int world = communicator.world_size();
  const std::string name = folder_name(job.step);
  const fs::path temp = root / (kTempPrefix + name);
  const fs::path final_dir = root / name;
  // Nothing non-finite is ever written: a diverged state would replace good checkpoints.
  const bool finite = values_are_finite(units, optimizer);
  LCTRAIN_CHECK(communicator.sum_over_ranks(finite ? 0.0 : 1.0) == 0.0,
                "refusing to write checkpoint {}: {} non-finite parameter or optimizer values; "
                "the checkpoints already in {} are kept",
                name, finite ? "another rank holds" : "this rank holds", root.string());
  if (rank == 0) {
    fs::create_directories(root);
    remove_unfinished(root);
    fs::create_directory(temp);
  }
  communicator.barrier();

  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (size_t index = 0; index < units.size(); ++index) {
    const std::string& unit = units[index]->name();
    tensors.emplace_back(model_key(unit), units[index]->shard().detach().to(torch::kCPU));
    tensors.emplace_back(exp_avg_key(unit), optimizer.exp_avg(index).to(torch::kCPU));
    tensors.emplace_back(exp_avg_sq_key(unit), optimizer.exp_avg_sq(index).to(torch::kCPU));
  }
  tensors.emplace_back(kRngKey, cpu_rng_state());
  const fs::path file = temp / Manifest::shard_file_name(rank, world);
  // A full disk or a file-size limit on any rank ends the save on every rank together; the
  // previous checkpoint and `latest` are untouched, the .tmp- folder is removed on the next start.
  std::string write_error;
  try {
    io::write_safetensors(file, tensors,
                          {{"format", "lctrain-checkpoint-shard"},
                           {"rank", std::to_string(rank)},
                           {"world_size", std::to_string(world)},
                           {"step", std::to_string(job.step)}});
  } catch (const std::exception& error) {
    write_error = error.what();
  }
  if (communicator.sum_over_ranks(write_error.empty() ? 0.0 : 1.0) != 0.0) {
    throw Error(
        "checkpoint {} could not be written ({}); the previous checkpoints and {} are "
        "unchanged",
        name, write_error.empty() ? "another rank failed" : write_error,
        (root / "latest").string());
  }
  const uint64_t digest = xxh3_of_file(file);
  // Every rank's (size, checksum) for the manifest; uint64 digests travel bit-cast as int64.
  auto mine = torch::empty({2}, torch::kInt64);
  mine[0] = static_cast<int64_t>(fs::file_size(file));
  std::memcpy(mine.data_ptr<int64_t>() + 1, &digest, sizeof digest);
  auto all = torch::empty({2 * world}, torch::kInt64);
  communicator.all_gather(all, mine);

  if (rank == 0) {
    job.format_version = kFormatVersion;
    job.values_finite = true;
    job.optimizer_steps = optimizer.steps();
    job.world_size = world;
    job.units = layouts_of(units);
    job.files.clear();
    for (int r = 0; r < world; ++r) {
      uint64_t value = 0;
      std::memcpy(&value, all.data_ptr<int64_t>() + 2 * r + 1, sizeof value);
      job.files.push_back({Manifest::shard_file_name(r, world),
                           static_cast<uint64_t>(all[2 * r].item<int64_t>()), hex(value)});
    }
    pause_for_tests(job.step);
    write_text_durably(temp / "config.yaml", job.config_yaml);
    write_text_durably(temp / "manifest.json", job.to_json().dump(1) + "\n");
    fsync_directory(temp);
    if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a rerun from scratch reaching it again
    fs::rename(temp, final_dir);
    fsync_directory(root);
    write_text_durably(root / "latest", name + "\n");
    prune(root, keep);
    uint64_t bytes = 0;
    for (const ShardFile& file : job.files) bytes += file.bytes;
    const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - started;
    log()->info("saved checkpoint {} (step {}, {} rank files, {:.3f} GB in {:.2f} s: {:.2f} GB/s)",
                final_dir.string(), job.step, world, static_cast<double>(bytes) / 1e9,
                seconds.count(), static_cast<double>(bytes) / 1e9 / seconds.count());
  }
  communicator.barrier();
  return final_dir;
}

std::optional<std::string> problem_with(const fs::path& dir, std::pair<int, int> ranks_share) {
  Manifest manifest;
  try {
    manifest = Manifest::read(dir);
  } catch (const Error& error) {
    return std::string(error.what());
  }
  for (size_t index = 0; index < manifest.files.size(); ++index) {
    const ShardFile& expected = manifest.files[index];
    const fs::path path = dir / expected.name;
    std::error_code error;
    const uintmax_t size = fs::file_size(path, error);
    if (error) return fmt::format("{} is missing", path.string());
    if (size != expected.bytes) {
      return fmt::format("{} has {} bytes, the manifest says {}", path.string(), size,
                         expected.bytes);
    }
    if (static_cast<int>(index) % ranks_share.second != ranks_share.first) continue;
    const std::string actual = file_xxh3(path);
    if (actual != expected.xxh3) {
      return fmt::format("{} fails its checksum (xxh3 {}, the manifest says {})", path.string(),
                         actual, expected.xxh3);
    }
  }
  return std::nullopt;
}

// The checkpoints to try, in order: the one `latest` names (the last one this run folder's job
// completed), then every other one newest first.
std::vector<fs::path> resume_candidates(const fs::path& root) {
  std::vector<fs::path> folders = list(root);
  std::ifstream latest_file(root / "latest");
  std::string latest;
  if (!(latest_file >> latest)) return folders;
  const auto named = std::find(folders.begin(), folders.end(), root / latest);
  if (named != folders.end()) std::rotate(folders.begin(), named, named + 1);
  return folders;
}

std::optional<fs::path> newest_good(const fs::path& root, Communicator& communicator) {
  for (const fs::path& dir : resume_candidates(root)) {
    const auto problem = problem_with(dir, {communicator.rank(), communicator.world_size()});
    if (problem) log()->warn("checkpoint {} cannot be used: {}", dir.string(), *problem);
    if (communicator.sum_over_ranks(problem ? 1.0 : 0.0) == 0.0) return dir;
    if (communicator.rank() == 0) {
      log()->warn("skipping damaged checkpoint {}; trying an older one", dir.string());
    }
  }
  return std::nullopt;
}

fs::path resolve(const fs::path& path) {
  if (fs::exists(path / "manifest.json")) {
    const auto problem = problem_with(path);
    LCTRAIN_CHECK(!problem, "checkpoint {} cannot be used: {}", path.string(), *problem);
    return path;
  }
  const fs::path root = fs::is_directory(path / "checkpoints") ? path / "checkpoints" : path;
  const auto folders = resume_candidates(root);
  for (const fs::path& dir : folders) {
    const auto problem = problem_with(dir);
    if (!problem) return dir;
    log()->warn("checkpoint {} cannot be used ({}); trying an older one", dir.string(), *problem);
  }
  throw Error("no usable checkpoint in {} ({} found)", path.string(), folders.size());
}

Manifest load(const fs::path& dir, const std::vector<FlatParamUnit*>& units,
              ShardedAdamW& optimizer, int rank, int world_size) {
  const auto started = std::chrono::steady_clock::now();
  const Manifest manifest = Manifest::read(dir);
  check_layout(manifest, units, dir);
  ShardReader reader(dir, manifest);
  std::vector<torch::Tensor> exp_avg, exp_avg_sq;
  torch::NoGradGuard no_grad;
  for (size_t index = 0; index < units.size(); ++index) {
    FlatParamUnit& unit = *units[index];
    const int64_t count = unit.shard_numel();
    const int64_t begin = static_cast<int64_t>(rank) * count;
    const torch::Device device = unit.shard().device();
    unit.shard().copy_(reader.range(model_key(unit.name()), index, begin, count).to(device));
    exp_avg.push_back(reader.range(exp_avg_key(unit.name()), index, begin, count).to(device));
    exp_avg_sq.push_back(reader.range(exp_avg_sq_key(unit.name()), index, begin, count).to(device));
  }
  optimizer.load_state(manifest.optimizer_steps, exp_avg, exp_avg_sq);
  const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - started;
  // What this rank needed: its share of the parameters and both moments, fp32.
  double bytes = 0.0;
  for (const FlatParamUnit* unit : units) bytes += 12.0 * static_cast<double>(unit->shard_numel());
  log()->info("rank {} loaded its shard of {} ({:.3f} GB in {:.2f} s: {:.2f} GB/s)", rank,
              dir.string(), bytes / 1e9, seconds.count(), bytes / 1e9 / seconds.count());
  if (manifest.world_size == world_size) {
    restore_cpu_rng_state(reader.file(rank).tensor(kRngKey));
  } else if (rank == 0) {
    log()->info(
        "resharding {} -> {} ranks: parameters and optimizer state resharded, per-rank RNG "
        "states left fresh",
        manifest.world_size, world_size);
  }
  return manifest;
}

torch::Tensor read_full_unit(const fs::path& dir, const Manifest& manifest, size_t unit_index) {
  ShardReader reader(dir, manifest);
  const UnitLayout& unit = manifest.units.at(unit_index);
  return reader.range(model_key(unit.name), unit_index, 0, unit.numel);
}

}  // namespace lctrain::checkpoint
