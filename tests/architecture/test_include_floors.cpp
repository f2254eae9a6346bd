// The library's folders form floors (util at the bottom, cli at the top): a file may include its
// own folder and lower floors only, so a shared piece can never come to depend on its users.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

namespace {

const std::map<std::string, int>& floors() {
  static const std::map<std::string, int> table = {
      {"util", 0},        {"model", 1}, {"profile", 1}, {"io", 2},
      {"distributed", 3}, {"data", 3},  {"optim", 4},   {"checkpoint", 5},
      {"eval", 6},        {"train", 6}, {"cli", 7},
  };
  return table;
}

std::filesystem::path library_root() {
  return std::filesystem::path(LCTRAIN_SOURCE_DIR) / "trainer";
}

// The project folders a file includes ("model/rope.h" -> "model"), with their line numbers.
std::vector<std::pair<int, std::string>> included_folders(const std::filesystem::path& file) {
  static const std::regex include_line(R"(^\s*#\s*include\s+"([a-z_]+)/)");
  std::vector<std::pair<int, std::string>> folders;
  std::ifstream in(file);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::smatch match;
    if (std::regex_search(line, match, include_line)) folders.emplace_back(number, match[1]);
  }
  return folders;
}

// Every violation as "file:line includes folder/ (floor N) from folder/ (floor M)".
std::vector<std::string> violations(const std::filesystem::path& root) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    const auto extension = entry.path().extension();
    if (!entry.is_regular_file() || (extension != ".h" && extension != ".cpp")) continue;
    const std::string folder = entry.path().lexically_relative(root).begin()->string();
    const auto own = floors().find(folder);
    if (own == floors().end()) {
      found.push_back(folder + "/ has no floor in this test's table: place it");
      continue;
    }
    for (const auto& [line, included] : included_folders(entry.path())) {
      if (included == folder) continue;
      const auto other = floors().find(included);
      if (other == floors().end() || other->second >= own->second) {
        found.push_back(entry.path().lexically_relative(root).string() + ":" +
                        std::to_string(line) + " includes " + included + "/ from " + folder + "/");
      }
    }
  }
  return found;
}

TEST(IncludeFloors, NoFolderIncludesAHigherOrEqualFloor) {
  const auto found = violations(library_root());
  std::string report;
  for (const auto& violation : found) report += violation + "\n";
  EXPECT_TRUE(found.empty()) << report;
}

TEST(IncludeFloors, DetectsAnUpwardInclude) {
  // The check itself: a util/ file that includes train/ must be reported.
  const auto root = std::filesystem::temp_directory_path() / "lctrain-include-floors";
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root / "util");
  std::filesystem::create_directories(root / "train");
  std::ofstream(root / "util" / "helper.h") << "#pragma once\n#include \"train/trainer.h\"\n";
  std::ofstream(root / "train" / "trainer.h") << "#pragma once\n#include \"util/helper.h\"\n";
  const auto found = violations(root);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0], "util/helper.h:2 includes train/ from util/");
  std::filesystem::remove_all(root);
}

}  // namespace
