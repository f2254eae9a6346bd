// lctrain::Error: the one exception type of the project. It carries the context a user needs
// (file, key, tensor name) in its message; the CLI prints it and exits non-zero.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace lctrain {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}

  template <typename... Args>
  Error(fmt::format_string<Args...> format, Args&&... args)
      : std::runtime_error(fmt::format(format, std::forward<Args>(args)...)) {}
};

// Prefixes an error raised inside `body` with `context` ("while loading /x/config.json: ...").
template <typename Body>
auto with_context(const std::string& context, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Error& error) {
    throw Error(context + ": " + error.what());
  }
}

}  // namespace lctrain

// Throws lctrain::Error with a formatted message when `condition` is false.
#define LCTRAIN_CHECK(condition, ...)      \
  do {                                     \
    if (!(condition)) {                    \
      throw ::lctrain::Error(__VA_ARGS__); \
    }                                      \
  } while (false)
