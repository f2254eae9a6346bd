// Plain-text token id files: integers separated by whitespace (what `lctrain forward --ids` reads).
#pragma once

#include <filesystem>
#include <vector>

namespace lctrain::io {

// Errors name the file and the offending word's position.
std::vector<int64_t> read_token_ids(const std::filesystem::path& path);

}  // namespace lctrain::io
