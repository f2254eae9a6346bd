#include "util/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "util/error.h"

namespace lctrain {

std::shared_ptr<spdlog::logger> log() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto created = spdlog::stderr_color_mt("lctrain");
    created->set_pattern("[%Y-%m-%d %H:%M:%S] [%^%l%$] %v");
    return created;
  }();
  return logger;
}

void set_log_level(const std::string& level) {
  const auto parsed = spdlog::level::from_str(level);
  LCTRAIN_CHECK(parsed != spdlog::level::off || level == "off",
                "unknown log level '{}' (use trace, debug, info, warn, error or off)", level);
  log()->set_level(parsed);
}

}  // namespace lctrain
