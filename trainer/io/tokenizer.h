// Tokenizer: a SentencePiece tokenizer.model (LLaMA 1/2) with LLaMA's conventions: BOS prepended
// on encode, no EOS unless asked, control tokens dropped on decode.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "io/sentencepiece_bridge/sentencepiece_backend.h"

namespace lctrain::io {

class Tokenizer {
 public:
  // Loads a tokenizer.model file; Error names the file when it is missing or not a SentencePiece
  // model.
  static Tokenizer load(const std::filesystem::path& model_file);
  // Loads <model_dir>/tokenizer.model.
  static Tokenizer from_model_dir(const std::filesystem::path& model_dir);

  std::vector<int64_t> encode(const std::string& text, bool add_bos = true,
                              bool add_eos = false) const;
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t vocab_size() const { return backend_->piece_size(); }
  int64_t bos_id() const { return backend_->bos_id(); }
  int64_t eos_id() const { return backend_->eos_id(); }

 private:
  explicit Tokenizer(std::shared_ptr<const SentencePieceBackend> backend);
  std::shared_ptr<const SentencePieceBackend> backend_;
};

}  // namespace lctrain::io
