// The documents an evaluation scores: from a token shards folder of `lctrain prepare-data` (each
// document ends at EOS), or from corpus files (.jsonl[.zst|.gz], .txt; or a folder of them)
// tokenized on the fly. The paper's proof-pile protocol keeps documents of at least N tokens and
// truncates them to N; --min-tokens and --max-tokens do that.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace lctrain::eval {

struct EvalDocument {
  std::string name;  // "doc 3", or "file:line (set)"
  std::vector<int64_t> tokens;
};

struct DocumentSelection {
  int64_t max_documents = 0;  // 0: all
  int64_t min_tokens = 0;     // shorter documents are skipped
  int64_t max_tokens = 0;     // longer ones are truncated; 0: no limit
  bool add_bos = false;       // put BOS before each document, as LLaMA's tokenizer does

  // Throws Error, naming the option, for a selection that could never score a token.
  void validate() const;
};

// Whether `data` is a token shards folder (else corpus files, which need a tokenizer).
bool is_token_shards(const std::filesystem::path& data);
// The corpus files `data` names: itself, or the .jsonl/.txt files in the folder; Error when it
// does not exist or holds none (before any tokenizer is looked for).
std::vector<std::filesystem::path> corpus_files(const std::filesystem::path& data);

// `tokenizer` is needed for corpus files and for add_bos. Every document returned has at least
// two tokens (one scored); no document at all is an error saying why.
std::vector<EvalDocument> load_eval_documents(const std::filesystem::path& data,
                                              const io::Tokenizer* tokenizer, int64_t eos_id,
                                              const DocumentSelection& selection);

}  // namespace lctrain::eval
