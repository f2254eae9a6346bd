#include "io/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include "util/error.h"

namespace lctrain::io {
namespace {

using LoadFunction = SentencePieceBackend* (*)(const char*, std::string*);

// AddressSanitizer refuses RTLD_DEEPBIND (google/sanitizers#611); sanitizer builds do without it.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kDlopenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kDlopenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

std::filesystem::path executable_dir() {
  std::error_code error;
  const auto executable = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::filesystem::path() : executable.parent_path();
}

// Loads the bridge library once (see sentencepiece_backend.h for why it is separate). Looked up
// beside the executable, then where the build put it, then in $LCTRAIN_SENTENCEPIECE_BRIDGE.
LoadFunction bridge_loader() {
  static const LoadFunction loader = []() -> LoadFunction {
    std::vector<std::filesystem::path> candidates;
    if (const char* override_path = std::getenv("LCTRAIN_SENTENCEPIECE_BRIDGE")) {
      candidates.emplace_back(override_path);
    }
    const auto here = executable_dir();
    candidates.push_back(here / "liblctrain_sentencepiece.so");
    candidates.push_back(here.parent_path() / "lib" / "liblctrain_sentencepiece.so");
    candidates.emplace_back(LCTRAIN_SENTENCEPIECE_BRIDGE_PATH);
    std::string failures;
    for (const auto& candidate : candidates) {
      if (!std::filesystem::exists(candidate)) continue;
      void* handle = dlopen(candidate.c_str(), kDlopenFlags);
      if (handle == nullptr) {
        failures += std::string(" ") + dlerror();
        continue;
      }
      // Deliberately never dlclose()d: the backends it creates live until exit.
      if (void* symbol = dlsym(handle, "lctrain_load_sentencepiece")) {
        return reinterpret_cast<LoadFunction>(symbol);
      }
    }
    throw Error(
        "cannot load the SentencePiece bridge liblctrain_sentencepiece.so (looked beside "
        "the executable and in the build folder; set LCTRAIN_SENTENCEPIECE_BRIDGE){}",
        failures);
  }();
  return loader;
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const SentencePieceBackend> backend)
    : backend_(std::move(backend)) {}

Tokenizer Tokenizer::load(const std::filesystem::path& model_file) {
  LCTRAIN_CHECK(std::filesystem::is_regular_file(model_file), "tokenizer file {} does not exist",
                model_file.string());
  std::string error;
  SentencePieceBackend* backend = bridge_loader()(model_file.c_str(), &error);
  LCTRAIN_CHECK(backend != nullptr, "{} is not a valid SentencePiece model: {}",
                model_file.string(), error);
  return Tokenizer(std::shared_ptr<const SentencePieceBackend>(backend));
}

Tokenizer Tokenizer::from_model_dir(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "tokenizer.model";
  LCTRAIN_CHECK(
      std::filesystem::exists(path),
      "{} has no tokenizer.model (lctrain reads SentencePiece tokenizers, as LLaMA 1/2 use)",
      model_dir.string());
  return load(path);
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos, bool add_eos) const {
  std::vector<int> pieces;
  std::string error;
  LCTRAIN_CHECK(backend_->encode(text, &pieces, &error), "tokenizer failed to encode text: {}",
                error);
  std::vector<int64_t> ids;
  ids.reserve(pieces.size() + 2);
  if (add_bos && bos_id() >= 0) ids.push_back(bos_id());
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  if (add_eos && eos_id() >= 0) ids.push_back(eos_id());
  return ids;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (const int64_t id : ids) {
    LCTRAIN_CHECK(id >= 0 && id < vocab_size(),
                  "token id {} is outside the tokenizer's vocabulary [0, {})", id, vocab_size());
    pieces.push_back(static_cast<int>(id));
  }
  std::string text;
  std::string error;
  LCTRAIN_CHECK(backend_->decode(pieces, &text, &error), "tokenizer failed to decode ids: {}",
                error);
  return text;
}

}  // namespace lctrain::io
