// The project's one logger (spdlog). Everything logs through lctrain::log(); the CLI sets the
// level.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace lctrain {

// The shared logger: "[time] [level] message" on stderr, so stdout stays free for results.
std::shared_ptr<spdlog::logger> log();

// Sets the level by name: trace, debug, info, warn, error, off.
void set_log_level(const std::string& level);

}  // namespace lctrain
