#include "support/test_support.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace lctrain::testing {

std::filesystem::path source_dir() { return LCTRAIN_SOURCE_DIR; }

std::filesystem::path fixture_dir(const std::string& name) {
  return source_dir() / "tests" / "fixtures" / name;
}

std::filesystem::path lctrain_binary() { return LCTRAIN_BINARY; }

ScratchDir::ScratchDir() {
  std::random_device device;
  std::mt19937_64 generator(device());
  path_ = std::filesystem::temp_directory_path() /
          ("lctrain-test-" + std::to_string(generator() % 1000000000ULL));
  std::filesystem::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed for: " + command);
  std::array<char, 4096> buffer{};
  size_t count = 0;
  while ((count = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    result.output.append(buffer.data(), count);
  }
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string quoted(const std::string& text) { return "'" + text + "'"; }

CommandResult run_lctrain(const std::string& args) {
  return run_command(quoted(lctrain_binary().string()) + " " + args);
}
std::string quoted(const std::filesystem::path& path) { return quoted(path.string()); }

namespace {

const char* const kSentences[] = {
    "The grass is green and the sky is blue over the quiet valley.",
    "A small model reads tokens one by one and predicts the next token.",
    "Position interpolation rescales rotary embeddings to read longer documents.",
    "Every morning the baker opens the shop before the sun rises.",
    "Rivers carry water from the mountains down to the wide sea.",
    "Long context windows let a language model remember earlier pages.",
    "The cat sleeps on the warm window sill while rain falls outside.",
    "Quick brown foxes jump over lazy dogs in the yellow field.",
    "We trained the network for three days on a single machine.",
    "Jack packed five boxes of books, maps, and old photographs.",
    "Zebras, yaks and owls live in very different places.",
    "Learning rates that are too high make the training loss explode.",
    "She wrote a letter to her friend in Paris, then walked to the station.",
    "How many tokens fit into a window of eight thousand positions?",
    "Numbers like 42, 1024 and 2048 appear in many configuration files.",
    "Vivid violet flowers grew beside the old stone bridge.",
    "Under the bright moon the children told stories about the forest.",
    "Xylophones and quiet drums filled the hall with music.",
    "If the gradient vanishes, the weights stop changing at all.",
    "Good tests fail loudly when the feature they guard is broken.",
};

}  // namespace

std::filesystem::path train_test_tokenizer(const std::filesystem::path& dir, int vocab_size,
                                           bool lossless) {
  std::string corpus;
  for (int pass = 0; pass < 8; ++pass) {
    for (const char* sentence : kSentences) corpus += std::string(sentence) + "\n";
  }
  write_text(dir / "corpus.txt", corpus);
  const auto result = run_command(
      "spm_train --input=" + quoted(dir / "corpus.txt") + " --model_prefix=" +
      quoted(dir / "tokenizer") + " --vocab_size=" + std::to_string(vocab_size) +
      " --model_type=bpe --character_coverage=1.0 --bos_id=1 --eos_id=2 --unk_id=0 --pad_id=-1"
      " --num_threads=1" +
      (lossless ? std::string(" --byte_fallback=true --normalization_rule_name=identity"
                              " --remove_extra_whitespaces=false")
                : std::string(" --byte_fallback=false")));
  if (result.exit_code != 0) throw std::runtime_error("spm_train failed:\n" + result.output);
  std::filesystem::remove(dir / "corpus.txt");
  return dir / "tokenizer.model";
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream stream(path, std::ios::binary);
  stream << text;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::stringstream buffer;
  buffer << stream.rdbuf();
  return buffer.str();
}

std::set<std::string> files_in(const std::filesystem::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.insert(entry.path().filename());
  }
  return names;
}

}  // namespace lctrain::testing
