// The interface between lctrain and libsentencepiece, which lives in its own shared library.
//
// Why: Debian's libsentencepiece embeds a private copy of protobuf-lite and exports its symbols,
// while LibTorch loads the full libprotobuf. Linked into one process they interpose each other
// and crash during static initialisation. The bridge library links only sentencepiece and is
// dlopen()ed with RTLD_LOCAL | RTLD_DEEPBIND, so each protobuf stays with its own user. Only
// virtual calls cross the boundary (no symbol lookups), with the same libstdc++ on both sides.
#pragma once

#include <string>
#include <vector>

namespace lctrain::io {

class SentencePieceBackend {
 public:
  virtual ~SentencePieceBackend() = default;
  // Each returns false and fills `error` on failure.
  virtual bool encode(const std::string& text, std::vector<int>* ids, std::string* error) const = 0;
  virtual bool decode(const std::vector<int>& ids, std::string* text, std::string* error) const = 0;
  virtual int piece_size() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
};

}  // namespace lctrain::io

// Exported by the bridge library: loads a tokenizer.model; nullptr and `error` set on failure.
extern "C" lctrain::io::SentencePieceBackend* lctrain_load_sentencepiece(const char* model_path,
                                                                         std::string* error);
