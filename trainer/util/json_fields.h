// Typed access to JSON object fields with errors that name the source file and the key.
// Every JSON document the user hands us (config.json, rope_scaling, indexes) is read through this.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace lctrain {

// Reads and parses a JSON file; Error names the file (missing, unreadable, or invalid JSON).
nlohmann::json read_json_file(const std::filesystem::path& path);
// Parses JSON text; `source` names where it came from in the error.
nlohmann::json parse_json(const std::string& text, const std::string& source);

// A JSON object plus the name of where it came from ("config.json", "rope_scaling in x").
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string source);

  bool has(const std::string& key) const;  // present and not null
  int64_t required_int(const std::string& key) const;
  double required_number(const std::string& key) const;
  std::string required_string(const std::string& key) const;
  std::optional<int64_t> optional_int(const std::string& key) const;
  std::optional<double> optional_number(const std::string& key) const;
  std::optional<bool> optional_bool(const std::string& key) const;
  std::optional<std::string> optional_string(const std::string& key) const;
  const nlohmann::json& raw(const std::string& key) const;
  const std::string& source() const { return source_; }

 private:
  const nlohmann::json& object_;
  std::string source_;
};

}  // namespace lctrain
