#include "io/token_ids_file.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <string>

#include "util/error.h"

namespace lctrain::io {

std::vector<int64_t> read_token_ids(const std::filesystem::path& path) {
  std::ifstream stream(path);
  LCTRAIN_CHECK(stream.good(), "cannot open token id file {}: {}", path.string(),
                std::strerror(errno));
  std::vector<int64_t> ids;
  std::string word;
  while (stream >> word) {
    int64_t value = 0;
    const auto [end, error] = std::from_chars(word.data(), word.data() + word.size(), value);
    LCTRAIN_CHECK(error == std::errc() && end == word.data() + word.size() && value >= 0,
                  "{}: token {} is '{}', expected a non-negative integer", path.string(),
                  ids.size() + 1, word);
    ids.push_back(value);
  }
  LCTRAIN_CHECK(!ids.empty(), "{}: no token ids found", path.string());
  return ids;
}

}  // namespace lctrain::io
