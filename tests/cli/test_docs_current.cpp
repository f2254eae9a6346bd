// The documentation cannot drift from the program: docs/configuration.md is what
// `lctrain config-reference` prints, and every `lctrain` subcommand and option in README.md's
// command blocks exists (checked against the subcommand's --help).
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "support/test_support.h"
#include "train/config_reference.h"

namespace lctrain {
namespace {

using testing::contains;
using testing::read_text;
using testing::run_lctrain;
using testing::source_dir;

TEST(Docs, ConfigurationReferenceIsCurrent) {
  EXPECT_EQ(read_text(source_dir() / "docs" / "configuration.md"),
            configuration_reference_markdown())
      << "docs/configuration.md is stale: run `build/bin/lctrain config-reference > "
         "docs/configuration.md`";
}

// The lctrain command lines of the README's ``` blocks, continuation lines joined.
std::vector<std::string> readme_command_lines() {
  std::istringstream lines(read_text(source_dir() / "README.md"));
  std::vector<std::string> commands;
  bool in_block = false;
  std::string pending;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("```", 0) == 0) {
      in_block = !in_block;
      continue;
    }
    if (!in_block) continue;
    const auto comment = line.find(" #");
    if (comment != std::string::npos) line = line.substr(0, comment);
    const bool continued = !line.empty() && line.back() == '\\';
    if (continued) line.pop_back();
    pending += line + " ";
    if (continued) continue;
    if (pending.find("lctrain ") != std::string::npos) commands.push_back(pending);
    pending.clear();
  }
  return commands;
}

// "train --config x.yaml ..." -> the subcommand ("eval ppl" for eval's own subcommands) and the
// options given to it, up to a bare "--" (what follows is another command line).
std::pair<std::string, std::vector<std::string>> subcommand_and_options(const std::string& text) {
  std::istringstream words(text);
  std::string subcommand;
  words >> subcommand;
  std::vector<std::string> options;
  std::string word;
  if (subcommand == "eval" && words >> word) subcommand += " " + word;
  while (words >> word && word != "--") {
    if (word.rfind("--", 0) == 0) options.push_back(word.substr(0, word.find('=')));
  }
  return {subcommand, options};
}

TEST(Docs, ReadmeCommandsUseRealSubcommandsAndOptions) {
  const auto commands = readme_command_lines();
  ASSERT_GT(commands.size(), 5u);
  int checked = 0;
  for (const std::string& command : commands) {
    // The lctrain invocation, and the worker command after `launch ... --`.
    std::vector<std::string> parts = {command.substr(command.find("lctrain ") + 8)};
    const auto worker = parts[0].find(" -- ");
    if (parts[0].rfind("launch", 0) == 0 && worker != std::string::npos) {
      parts.push_back(parts[0].substr(worker + 4));
    }
    for (const std::string& part : parts) {
      const auto [subcommand, options] = subcommand_and_options(part);
      const auto help = run_lctrain(subcommand + " --help");
      ASSERT_EQ(help.exit_code, 0)
          << "README runs `lctrain " << subcommand << "`, which does not exist:\n"
          << command;
      for (const std::string& option : options) {
        EXPECT_TRUE(contains(help.output, option + " ") || contains(help.output, option + ",") ||
                    contains(help.output, option + "\n"))
            << "README gives `lctrain " << subcommand << " " << option
            << "`, which its --help does not list:\n"
            << command;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 5);
}

}  // namespace
}  // namespace lctrain
