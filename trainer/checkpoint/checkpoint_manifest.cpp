#include "checkpoint/checkpoint_manifest.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "util/error.h"
#include "util/json_fields.h"

namespace lctrain::checkpoint {
namespace {

const JsonFields section(const nlohmann::json& json, const std::string& key,
                         const std::string& source) {
  LCTRAIN_CHECK(json.contains(key) && json.at(key).is_object(),
                "{}: '{}' is missing or not an object", source, key);
  return JsonFields(json.at(key), source + " " + key);
}

// `key` is a C string so that no temporary std::string is an argument: GCC 13+ would take the
// returned reference for a dangling one (-Wdangling-reference).
const nlohmann::json& array_field(const nlohmann::json& json, const char* key,
                                  const std::string& source) {
  LCTRAIN_CHECK(json.contains(key) && json.at(key).is_array(),
                "{}: '{}' is missing or not an array", source, key);
  return json.at(key);
}

std::vector<int64_t> shape_of(const nlohmann::json& json, const std::string& source) {
  LCTRAIN_CHECK(json.is_array(), "{}: shape is not an array", source);
  std::vector<int64_t> shape;
  for (const auto& dimension : json) {
    LCTRAIN_CHECK(dimension.is_number_integer() && dimension.get<int64_t>() >= 0,
                  "{}: shape holds {}, not a dimension", source, dimension.dump());
    shape.push_back(dimension.get<int64_t>());
  }
  return shape;
}

int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (const int64_t dimension : shape) count *= dimension;
  return count;
}

}  // namespace

std::string Manifest::shard_file_name(int rank, int world_size) {
  return fmt::format("rank-{:05d}-of-{:05d}.safetensors", rank, world_size);
}

nlohmann::json Manifest::to_json() const {
  nlohmann::json units_json = nlohmann::json::array();
  for (const UnitLayout& unit : units) {
    nlohmann::json parameters_json = nlohmann::json::array();
    for (const ParameterLayout& parameter : unit.parameters) {
      parameters_json.push_back(
          {{"name", parameter.name}, {"shape", parameter.shape}, {"offset", parameter.offset}});
    }
    units_json.push_back({{"name", unit.name},
                          {"numel", unit.numel},
                          {"padded_numel", unit.padded_numel},
                          {"parameters", parameters_json}});
  }
  nlohmann::json files_json = nlohmann::json::array();
  for (const ShardFile& file : files) {
    files_json.push_back({{"name", file.name}, {"bytes", file.bytes}, {"xxh3", file.xxh3}});
  }
  return {
      {"format", "lctrain-checkpoint"},
      {"format_version", format_version},
      {"world_size", world_size},
      {"train_state",
       {{"step", step},
        {"tokens_seen", tokens_seen},
        {"loss", std::isfinite(loss) ? nlohmann::json(loss) : nlohmann::json(nullptr)}}},
      {"step_guard",
       {{"recent_losses", recent_losses},
        {"rejected_steps", rejected_steps},
        {"values_finite", values_finite}}},
      {"lr_scheduler", {{"step", step}, {"lr", lr}}},
      {"dataloader",
       {{"sequences_seen", sequences_seen}, {"seed", data_seed}, {"path", data_path}}},
      {"optimizer", {{"type", "adamw"}, {"steps", optimizer_steps}, {"state_dtype", "float32"}}},
      {"grad_scaler", {{"scale", loss_scale}, {"growth_tracker", loss_scale_growth_tracker}}},
      {"rng", {{"per_rank", true}}},
      {"model",
       {{"config", model_config},
        {"base_model", base_model},
        {"master_dtype", "float32"},
        {"units", units_json}}},
      {"files", files_json},
      {"config_yaml", config_yaml}};
}

Manifest Manifest::from_json(const nlohmann::json& json, const std::string& source) {
  LCTRAIN_CHECK(json.is_object(), "{}: not a JSON object", source);
  const JsonFields top(json, source);
  LCTRAIN_CHECK(top.required_string("format") == "lctrain-checkpoint",
                "{}: 'format' is not lctrain-checkpoint", source);
  Manifest manifest;
  manifest.format_version = static_cast<int>(top.required_int("format_version"));
  LCTRAIN_CHECK(manifest.format_version == kFormatVersion,
                "{}: format_version {} is not supported (this lctrain reads {})", source,
                manifest.format_version, kFormatVersion);
  manifest.world_size = static_cast<int>(top.required_int("world_size"));
  LCTRAIN_CHECK(manifest.world_size >= 1, "{}: world_size {} must be >= 1", source,
                manifest.world_size);

  const JsonFields train_state = section(json, "train_state", source);
  manifest.step = train_state.required_int("step");
  manifest.tokens_seen = train_state.required_int("tokens_seen");
  manifest.loss =
      train_state.optional_number("loss").value_or(std::numeric_limits<double>::quiet_NaN());
  LCTRAIN_CHECK(manifest.step >= 0 && manifest.tokens_seen >= 0,
                "{}: train_state has negative counters", source);
  manifest.lr = section(json, "lr_scheduler", source).required_number("lr");
  manifest.optimizer_steps = section(json, "optimizer", source).required_int("steps");
  LCTRAIN_CHECK(manifest.optimizer_steps >= 0 && manifest.optimizer_steps <= manifest.step,
                "{}: optimizer.steps {} is not within 0..{}", source, manifest.optimizer_steps,
                manifest.step);
  const JsonFields scaler = section(json, "grad_scaler", source);
  manifest.loss_scale = scaler.required_number("scale");
  manifest.loss_scale_growth_tracker = scaler.required_int("growth_tracker");
  LCTRAIN_CHECK(manifest.loss_scale > 0.0 && manifest.loss_scale_growth_tracker >= 0,
                "{}: grad_scaler holds scale {} and growth_tracker {}", source, manifest.loss_scale,
                manifest.loss_scale_growth_tracker);
  const JsonFields dataloader = section(json, "dataloader", source);
  manifest.sequences_seen = dataloader.required_int("sequences_seen");
  LCTRAIN_CHECK(manifest.sequences_seen >= 0, "{}: dataloader.sequences_seen is negative", source);
  manifest.data_seed = static_cast<uint64_t>(dataloader.required_int("seed"));
  manifest.data_path = dataloader.required_string("path");

  const JsonFields model = section(json, "model", source);
  LCTRAIN_CHECK(json.at("model").contains("config") && json.at("model").at("config").is_object(),
                "{}: model.config is missing", source);
  manifest.model_config = json.at("model").at("config");
  manifest.base_model = model.required_string("base_model");
  const std::string model_source = source + " model";
  for (const auto& unit_json : array_field(json.at("model"), "units", model_source)) {
    const std::string unit_source =
        source + " model.units[" + std::to_string(manifest.units.size()) + "]";
    LCTRAIN_CHECK(unit_json.is_object(), "{}: not an object", unit_source);
    const JsonFields unit_fields(unit_json, unit_source);
    UnitLayout unit;
    unit.name = unit_fields.required_string("name");
    unit.numel = unit_fields.required_int("numel");
    unit.padded_numel = unit_fields.required_int("padded_numel");
    LCTRAIN_CHECK(unit.numel >= 0 && unit.padded_numel >= unit.numel &&
                      unit.padded_numel % manifest.world_size == 0 && unit.padded_numel > 0,
                  "{}: numel {} / padded_numel {} do not fit world_size {}", unit_source,
                  unit.numel, unit.padded_numel, manifest.world_size);
    int64_t next_offset = 0;
    for (const auto& parameter_json : array_field(unit_json, "parameters", unit_source)) {
      LCTRAIN_CHECK(parameter_json.is_object(), "{}: a parameter is not an object", unit_source);
      const JsonFields parameter_fields(parameter_json, unit_source);
      ParameterLayout parameter;
      parameter.name = parameter_fields.required_string("name");
      parameter.shape = shape_of(parameter_fields.raw("shape"), unit_source + " " + parameter.name);
      parameter.offset = parameter_fields.required_int("offset");
      // Parameters tile the flat buffer in order: anything else is a damaged layout.
      LCTRAIN_CHECK(parameter.offset == next_offset, "{}: {} starts at {}, expected {}",
                    unit_source, parameter.name, parameter.offset, next_offset);
      next_offset += element_count(parameter.shape);
      unit.parameters.push_back(std::move(parameter));
    }
    LCTRAIN_CHECK(next_offset == unit.numel, "{}: parameters hold {} elements, numel is {}",
                  unit_source, next_offset, unit.numel);
    manifest.units.push_back(std::move(unit));
  }
  LCTRAIN_CHECK(!manifest.units.empty(), "{}: model.units is empty", source);

  for (const auto& file_json : array_field(json, "files", source)) {
    LCTRAIN_CHECK(file_json.is_object(), "{}: files holds a non-object", source);
    const JsonFields file_fields(file_json, source + " files");
    ShardFile file;
    file.name = file_fields.required_string("name");
    file.bytes = static_cast<uint64_t>(file_fields.required_int("bytes"));
    file.xxh3 = file_fields.required_string("xxh3");
    manifest.files.push_back(std::move(file));
  }
  LCTRAIN_CHECK(manifest.files.size() == static_cast<size_t>(manifest.world_size),
                "{}: {} files listed for world_size {}", source, manifest.files.size(),
                manifest.world_size);
  for (int rank = 0; rank < manifest.world_size; ++rank) {
    LCTRAIN_CHECK(manifest.files[rank].name == shard_file_name(rank, manifest.world_size),
                  "{}: file {} should be {}", source, manifest.files[rank].name,
                  shard_file_name(rank, manifest.world_size));
  }
  manifest.config_yaml = top.optional_string("config_yaml").value_or("");
  // Absent in checkpoints of earlier versions: no history, values not marked.
  if (top.has("step_guard")) {
    const JsonFields guard = section(json, "step_guard", source);
    const nlohmann::json& losses = guard.raw("recent_losses");
    LCTRAIN_CHECK(losses.is_array(), "{}: step_guard.recent_losses is not an array", source);
    for (const auto& value : losses) {
      LCTRAIN_CHECK(value.is_number() && std::isfinite(value.get<double>()),
                    "{}: step_guard.recent_losses holds {}", source, value.dump());
      manifest.recent_losses.push_back(value.get<double>());
    }
    manifest.rejected_steps = guard.required_int("rejected_steps");
    manifest.values_finite = guard.optional_bool("values_finite").value_or(false);
  }
  return manifest;
}

Manifest Manifest::read(const std::filesystem::path& checkpoint_dir) {
  const auto path = checkpoint_dir / "manifest.json";
  return from_json(read_json_file(path), path.string());
}

}  // namespace lctrain::checkpoint
