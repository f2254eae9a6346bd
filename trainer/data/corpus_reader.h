// Documents from the corpora `lctrain prepare-data` reads: JSON lines (the Pile's format:
// {"text": ..., "meta": {"pile_set_name": ...}}), plain or compressed (.jsonl, .jsonl.zst,
// .jsonl.gz), and .txt files (one document each). Bad lines are counted and skipped with
// file:line examples; a corrupt or truncated zstd/gzip stream is an Error naming the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace lctrain::data {

struct Document {
  std::string text;
  std::string set_name;  // meta.pile_set_name, else the input file's name
  int64_t part = 0;      // > 0: a later part of a .txt file split at the maximum document size
};

struct BadLines {
  int64_t invalid_json = 0;
  int64_t missing_text = 0;
  int64_t invalid_utf8 = 0;
  int64_t too_long = 0;               // JSON lines above the maximum document size, skipped unread
  std::vector<std::string> examples;  // "file:line: reason", the first few
  int64_t total() const { return invalid_json + missing_text + invalid_utf8 + too_long; }
};

// The largest document read whole: a JSON line is held (and parsed) in memory, so one longer
// than this is skipped without being kept and counted in BadLines::too_long; a .txt file longer
// than this is split into documents of at most this size (at whitespace).
constexpr uint64_t kDefaultMaxDocumentBytes = 64'000'000;

// Calls `consume` for every document of `path` in order; `on_bytes` with the input bytes (as
// stored, i.e. compressed) consumed so far, for progress. Memory stays within a few times
// `max_document_bytes` whatever the input holds.
void read_documents(const std::filesystem::path& path,
                    const std::function<void(Document&&)>& consume, BadLines& bad,
                    const std::function<void(uint64_t)>& on_bytes,
                    uint64_t max_document_bytes = kDefaultMaxDocumentBytes);

// Whether read_documents() takes this file (by its name: .txt, .jsonl/.json, plain or .zst/.gz).
bool is_corpus_file(const std::filesystem::path& path);

bool is_valid_utf8(const std::string& text);

}  // namespace lctrain::data
