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
};

// `tokenizer` is needed for corpus files and for add_bos.
std::vector<EvalDocument> load_eval_documents(const std::filesystem::path& data,
                                              const io::Tokenizer* tokenizer, int64_t eos_id,
                                              const DocumentSelection& selection);

}  // namespace lctrain::eval
