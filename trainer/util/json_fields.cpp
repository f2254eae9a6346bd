#include "util/json_fields.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "util/error.h"

namespace lctrain {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  LCTRAIN_CHECK(stream.good(), "cannot open {}: {}", path.string(), std::strerror(errno));
  std::stringstream buffer;
  buffer << stream.rdbuf();
  return parse_json(buffer.str(), path.string());
}

nlohmann::json parse_json(const std::string& text, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    throw Error("{}: invalid JSON: {}", source, error.what());
  }
}

JsonFields::JsonFields(const nlohmann::json& object, std::string source)
    : object_(object), source_(std::move(source)) {
  LCTRAIN_CHECK(object_.is_object(), "{}: expected a JSON object, got {}", source_,
                object_.type_name());
}

bool JsonFields::has(const std::string& key) const {
  const auto found = object_.find(key);
  return found != object_.end() && !found->is_null();
}

const nlohmann::json& JsonFields::raw(const std::string& key) const {
  LCTRAIN_CHECK(has(key), "{}: missing key '{}'", source_, key);
  return object_.at(key);
}

int64_t JsonFields::required_int(const std::string& key) const {
  const nlohmann::json& value = raw(key);
  // JSON writers sometimes emit integral values as 4096.0; accept those, reject 4096.5.
  if (value.is_number_float()) {
    const double number = value.get<double>();
    LCTRAIN_CHECK(
        std::isfinite(number) && number == std::floor(number) && std::fabs(number) < 9.0e15,
        "{}: key '{}' must be an integer, got {}", source_, key, value.dump());
    return static_cast<int64_t>(number);
  }
  LCTRAIN_CHECK(value.is_number_integer(), "{}: key '{}' must be an integer, got {}", source_, key,
                value.dump());
  if (value.is_number_unsigned()) {
    LCTRAIN_CHECK(
        value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
        "{}: key '{}' is out of range: {}", source_, key, value.dump());
  }
  return value.get<int64_t>();
}

double JsonFields::required_number(const std::string& key) const {
  const nlohmann::json& value = raw(key);
  LCTRAIN_CHECK(value.is_number(), "{}: key '{}' must be a number, got {}", source_, key,
                value.dump());
  return value.get<double>();
}

std::string JsonFields::required_string(const std::string& key) const {
  const nlohmann::json& value = raw(key);
  LCTRAIN_CHECK(value.is_string(), "{}: key '{}' must be a string, got {}", source_, key,
                value.dump());
  return value.get<std::string>();
}

std::optional<int64_t> JsonFields::optional_int(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return required_int(key);
}

std::optional<double> JsonFields::optional_number(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return required_number(key);
}

std::optional<bool> JsonFields::optional_bool(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  const nlohmann::json& value = raw(key);
  LCTRAIN_CHECK(value.is_boolean(), "{}: key '{}' must be true or false, got {}", source_, key,
                value.dump());
  return value.get<bool>();
}

std::optional<std::string> JsonFields::optional_string(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return required_string(key);
}

}  // namespace lctrain
