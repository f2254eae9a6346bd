// `lctrain prepare-data`: corpora in, token shards out (data/token_shards.h). One reader thread
// decodes the inputs in order, N workers tokenize batches of documents with SentencePiece, and
// the writer packs the batches in input order, so the shards do not depend on N.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/corpus_reader.h"

namespace lctrain::data {

struct PrepareOptions {
  std::vector<std::filesystem::path> inputs;
  std::filesystem::path tokenizer;  // tokenizer.model
  std::filesystem::path out;
  int workers = 0;  // 0 = every core
  int64_t tokens_per_shard = 100'000'000;
  bool add_bos = false;  // BOS before each document as well as EOS after it
  bool progress = true;
  // JSON lines longer than this are skipped (counted as too_long), .txt files longer are split
  // into several documents (counted as split_documents): see data/corpus_reader.h.
  uint64_t max_document_bytes = kDefaultMaxDocumentBytes;
  // Documents above twice this are tokenized in pieces of about this size, in parallel and with
  // bounded memory; the tokens are the same as the whole document's. SentencePiece's time per
  // byte grows with the length it encodes at once: one 3 MB document took 12.3 s in 8 KB pieces,
  // 13.0 s in 32 KB, 19.0 s in 256 KB and 44.5 s whole, the same text as 5 KB documents 11.9 s
  // (wall, 2 workers on a busy 2-core machine, ~6 s of it start-up).
  int64_t piece_bytes = 16 * 1024;
};

struct SetCounts {
  int64_t documents = 0;
  int64_t tokens = 0;
  int64_t bytes = 0;  // of document text
};

struct PrepareSummary {
  int64_t documents = 0;
  int64_t split_documents = 0;  // .txt parts past the first (each also counts as a document)
  int64_t tokens = 0;
  int64_t text_bytes = 0;
  uint64_t input_bytes = 0;  // as stored (compressed)
  double seconds = 0.0;
  std::map<std::string, SetCounts> sets;
  BadLines bad;
  std::vector<std::pair<std::string, int64_t>> shards;
};

// Writes <out>/shard-*.bin and <out>/manifest.json; returns what it did.
PrepareSummary prepare_data(const PrepareOptions& options);

}  // namespace lctrain::data
