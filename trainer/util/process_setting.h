// A process-wide setting read from an environment variable on first use, or set explicitly
// (tests, benchmarks), like LibTorch's own global flags. `parse` turns the variable's text ("" when
// unset) into the setting and throws lctrain::Error naming the variable for text it does not know.
#pragma once

#include <atomic>
#include <cstdlib>
#include <string>

namespace lctrain {

template <typename Setting>
class ProcessSetting {
 public:
  using Parse = Setting (*)(const std::string& text, const std::string& variable);

  ProcessSetting(const char* variable, Parse parse) : variable_(variable), parse_(parse) {}

  Setting get() {
    int value = value_.load();
    if (value < 0) {
      const char* text = std::getenv(variable_);
      value = static_cast<int>(parse_(text != nullptr ? text : "", variable_));
      value_.store(value);
    }
    return static_cast<Setting>(value);
  }

  void set(Setting setting) { value_.store(static_cast<int>(setting)); }

 private:
  const char* variable_;
  Parse parse_;
  std::atomic<int> value_{-1};  // -1: not read from the environment yet
};

}  // namespace lctrain
