// Helpers shared by the test binaries: fixture paths, scratch folders, running the CLI.
#pragma once

#include <filesystem>
#include <set>
#include <string>

namespace lctrain::testing {

// The repository root and the bundled fixture folders (tests/fixtures/...).
std::filesystem::path source_dir();
std::filesystem::path fixture_dir(const std::string& name);
// build/bin/lctrain.
std::filesystem::path lctrain_binary();

// A fresh folder under the system temp dir, removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command and captures its combined output and exit status.
CommandResult run_command(const std::string& command);

// Runs `build/bin/lctrain <args>` (args already shell-quoted), stdout and stderr together.
CommandResult run_lctrain(const std::string& args);

// Single-quotes a word for the shell.
std::string quoted(const std::string& text);
std::string quoted(const std::filesystem::path& path);

// Trains <dir>/tokenizer.model with spm_train (BPE, unk 0, bos 1, eos 2, no pad) on a few KB of
// English sentences; returns its path. Throws std::runtime_error if spm_train fails.
// With `lossless`, LLaMA's settings: byte fallback and no normalization, so that decode(encode(x))
// gives back any UTF-8 text x (vocab_size must then leave room for the 256 byte pieces).
std::filesystem::path train_test_tokenizer(const std::filesystem::path& dir, int vocab_size,
                                           bool lossless = false);

// Whether `text` contains `part` (for command output).
bool contains(const std::string& text, const std::string& part);

// Writes `text` to `path`, creating parent folders.
void write_text(const std::filesystem::path& path, const std::string& text);
std::string read_text(const std::filesystem::path& path);
// The names of the entries directly in `dir`, sorted.
std::set<std::string> files_in(const std::filesystem::path& dir);

}  // namespace lctrain::testing
