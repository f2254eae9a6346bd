#include "data/prepare_data.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "data/token_shards.h"
#include "io/tokenizer.h"
#include "util/error.h"
#include "util/logging.h"
#include "util/progress_bar.h"

namespace lctrain::data {
namespace fs = std::filesystem;
namespace {

constexpr size_t kBatchDocuments = 64;
// A batch is also closed at this much text, so the queues hold a bounded number of bytes.
constexpr size_t kBatchBytes = 1 << 20;

// A stretch of one document that a worker tokenizes on its own: SentencePiece takes about 80
// bytes of memory per byte of text it encodes at once (and its time grows faster than the
// length), so a long document is cut into pieces that workers encode in parallel and the writer
// joins in order, with BOS only before the first and EOS only after the last.
struct Piece {
  std::string text;
  std::string set_name;
  bool first = true;
  bool last = true;
  bool split_part = false;  // a later part of a .txt file cut at the maximum document size
};

struct Batch {
  int64_t index = 0;
  std::vector<Piece> documents;
  size_t bytes = 0;
  std::vector<std::vector<int64_t>> tokens;  // filled by a worker
  std::string error;                         // a worker's failure, rethrown by the writer
};

// How a piece that starts after a cut (made just before a single space between two words) is
// encoded so that its tokens are those the whole document gives there. SentencePiece marks the
// space as part of the next word ("▁word"); tokenizers that add a dummy prefix give it back to
// the piece's first word when the space is left out, others need the space kept.
enum class PieceStart { kDropSpace, kKeepSpace, kWhole };

PieceStart calibrate_piece_start(const io::Tokenizer& tokenizer) {
  const auto whole = tokenizer.encode("x y", false, false);
  const auto head = tokenizer.encode("x", false, false);
  if (whole.size() <= head.size() || !std::equal(head.begin(), head.end(), whole.begin())) {
    return PieceStart::kWhole;
  }
  const std::vector<int64_t> tail(whole.begin() + static_cast<std::ptrdiff_t>(head.size()),
                                  whole.end());
  if (tokenizer.encode("y", false, false) == tail) return PieceStart::kDropSpace;
  if (tokenizer.encode(" y", false, false) == tail) return PieceStart::kKeepSpace;
  return PieceStart::kWhole;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The first cut at or after `from`: a single space between two non-space bytes, where no
// SentencePiece token crosses; std::string::npos when the rest of `text` has none. (A stretch
// without such a space, e.g. a table rule or base64, only makes that one piece longer: stopping
// there would leave the whole rest of the document to one piece.)
size_t find_cut(const std::string& text, size_t from) {
  for (size_t at = std::max<size_t>(from, 1); at + 1 < text.size(); ++at) {
    if (text[at] == ' ' && !is_space(text[at - 1]) && !is_space(text[at + 1])) return at;
  }
  return std::string::npos;
}

// A bounded queue of batches between threads; close() ends the consumers' loop.
class BatchQueue {
 public:
  explicit BatchQueue(size_t capacity) : capacity_(capacity) {}
  void push(Batch batch) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_full_.wait(lock, [&] { return items_.size() < capacity_ || closed_; });
    items_.push_back(std::move(batch));
    not_empty_.notify_one();
  }
  std::optional<Batch> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    not_empty_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    Batch batch = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return batch;
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  size_t capacity_;
  std::deque<Batch> items_;
  bool closed_ = false;
  std::mutex mutex_;
  std::condition_variable not_empty_, not_full_;
};

nlohmann::json manifest_json(const PrepareOptions& options, const io::Tokenizer& tokenizer,
                             const PrepareSummary& summary, int bytes_per_token) {
  nlohmann::json sets = nlohmann::json::object();
  for (const auto& [name, counts] : summary.sets) {
    sets[name] = {
        {"documents", counts.documents}, {"tokens", counts.tokens}, {"bytes", counts.bytes}};
  }
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& [name, tokens] : summary.shards) {
    shards.push_back({{"name", name}, {"tokens", tokens}});
  }
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& input : options.inputs) inputs.push_back(input.string());
  return {{"format", "lctrain-token-shards"},
          {"version", kShardVersion},
          {"dtype", bytes_per_token == 2 ? "uint16" : "uint32"},
          {"tokenizer", options.tokenizer.string()},
          {"vocab_size", tokenizer.vocab_size()},
          {"eos_id", tokenizer.eos_id()},
          {"bos_per_document", options.add_bos},
          {"max_document_bytes", options.max_document_bytes},
          {"split_documents", summary.split_documents},
          {"inputs", inputs},
          {"documents", summary.documents},
          {"tokens", summary.tokens},
          {"bytes", summary.text_bytes},
          {"sets", sets},
          {"bad_lines",
           {{"invalid_json", summary.bad.invalid_json},
            {"missing_text", summary.bad.missing_text},
            {"invalid_utf8", summary.bad.invalid_utf8},
            {"too_long", summary.bad.too_long},
            {"examples", summary.bad.examples}}},
          {"shards", shards}};
}

}  // namespace

PrepareSummary prepare_data(const PrepareOptions& options) {
  LCTRAIN_CHECK(!options.inputs.empty(), "prepare-data: no --input given");
  uint64_t total_input_bytes = 0;
  for (const auto& input : options.inputs) {
    LCTRAIN_CHECK(fs::is_regular_file(input), "input {} does not exist", input.string());
    total_input_bytes += fs::file_size(input);
  }
  const io::Tokenizer tokenizer = io::Tokenizer::load(options.tokenizer);
  LCTRAIN_CHECK(tokenizer.eos_id() >= 0, "{}: the tokenizer has no EOS token to end documents",
                options.tokenizer.string());
  const int bytes_per_token = tokenizer.vocab_size() <= 65536 ? 2 : 4;
  const int workers = options.workers > 0
                          ? options.workers
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  PrepareSummary summary;
  const auto started = std::chrono::steady_clock::now();
  BatchQueue to_tokenize(static_cast<size_t>(workers) * 4);
  BatchQueue tokenized(static_cast<size_t>(workers) * 4);
  std::string reader_error;
  std::atomic<uint64_t> input_bytes_read{0};  // the reader's progress, read by the writer

  const PieceStart piece_start = calibrate_piece_start(tokenizer);
  const size_t piece_bytes = static_cast<size_t>(std::max<int64_t>(options.piece_bytes, 16));
  if (piece_start == PieceStart::kWhole) {
    log()->warn(
        "{}: cannot tell how this tokenizer encodes a word after a space; long documents "
        "are tokenized whole (slower, more memory)",
        options.tokenizer.string());
  }

  // Reader: documents in input order, cut into pieces, in numbered batches.
  std::thread reader([&] {
    try {
      Batch batch;
      const auto flush = [&] {
        if (batch.documents.empty()) return;
        const int64_t next = batch.index + 1;
        to_tokenize.push(std::move(batch));
        batch = Batch{};
        batch.index = next;
      };
      const auto add = [&](Piece&& piece) {
        batch.bytes += piece.text.size();
        batch.documents.push_back(std::move(piece));
        if (batch.documents.size() == kBatchDocuments || batch.bytes >= kBatchBytes) flush();
      };
      const auto add_document = [&](Document&& document) {
        const std::string& text = document.text;
        size_t begin = 0;
        bool first = true;
        while (piece_start != PieceStart::kWhole && text.size() - begin > 2 * piece_bytes) {
          const size_t cut = find_cut(text, begin + piece_bytes);
          if (cut == std::string::npos) break;  // no space left to cut at: the rest goes whole
          add(Piece{text.substr(begin, cut - begin), document.set_name, first, false,
                    document.part > 0});
          first = false;
          begin = piece_start == PieceStart::kDropSpace ? cut + 1 : cut;
        }
        if (begin == 0) {
          add(Piece{std::move(document.text), document.set_name, true, true, document.part > 0});
        } else {
          add(Piece{text.substr(begin), document.set_name, false, true, false});
        }
      };
      uint64_t done_bytes = 0;
      for (const auto& input : options.inputs) {
        read_documents(
            input, add_document, summary.bad,
            [&](uint64_t bytes) { input_bytes_read = done_bytes + bytes; },
            options.max_document_bytes);
        done_bytes += fs::file_size(input);
        input_bytes_read = done_bytes;
      }
      flush();
    } catch (const std::exception& error) {
      reader_error = error.what();
    }
    to_tokenize.close();
  });

  // Workers: SentencePiece encoding, which is const and thread-safe.
  std::vector<std::thread> pool;
  std::atomic<int> running{workers};
  for (int w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      while (auto batch = to_tokenize.pop()) {
        try {
          for (const Piece& piece : batch->documents) {
            batch->tokens.push_back(
                tokenizer.encode(piece.text, options.add_bos && piece.first, piece.last));
          }
        } catch (const std::exception& error) {
          batch->error = error.what();
        }
        tokenized.push(std::move(*batch));
      }
      if (--running == 0) tokenized.close();
    });
  }

  // Writer (this thread): batches back in input order. On any failure here the other threads are
  // released and joined before the error leaves.
  const auto stop_threads = [&] {
    to_tokenize.close();
    tokenized.close();
    if (reader.joinable()) reader.join();
    for (auto& thread : pool) {
      if (thread.joinable()) thread.join();
    }
  };
  std::optional<TokenShardWriter> writer;
  std::string writer_error;
  try {
    writer.emplace(options.out, bytes_per_token, options.tokens_per_shard);
    ProgressBar progress(static_cast<int64_t>(total_input_bytes), options.progress);
    std::map<int64_t, Batch> waiting;
    int64_t next_index = 0;
    while (auto batch = tokenized.pop()) {
      waiting.emplace(batch->index, std::move(*batch));
      for (auto found = waiting.find(next_index); found != waiting.end();
           found = waiting.find(++next_index)) {
        Batch& ready = found->second;
        if (!ready.error.empty() && writer_error.empty()) writer_error = ready.error;
        for (size_t d = 0; d < ready.tokens.size(); ++d) {
          const Piece& piece = ready.documents[d];
          writer->append(ready.tokens[d]);
          SetCounts& set = summary.sets[piece.set_name];
          // A document counts once, at its last piece; a space dropped at a cut counts too.
          const int64_t bytes = static_cast<int64_t>(piece.text.size()) +
                                (!piece.first && piece_start == PieceStart::kDropSpace ? 1 : 0);
          set.documents += piece.last ? 1 : 0;
          set.tokens += static_cast<int64_t>(ready.tokens[d].size());
          set.bytes += bytes;
          summary.documents += piece.last ? 1 : 0;
          summary.split_documents += piece.split_part && piece.first ? 1 : 0;
          summary.tokens += static_cast<int64_t>(ready.tokens[d].size());
          summary.text_bytes += bytes;
        }
        waiting.erase(found);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        progress.update(static_cast<int64_t>(input_bytes_read.load()),
                        fmt::format("{:.1f} MB/s, {:.0f} tokens/s",
                                    static_cast<double>(summary.text_bytes) / 1e6 / seconds,
                                    static_cast<double>(summary.tokens) / seconds));
      }
    }
    progress.clear();
  } catch (...) {
    stop_threads();
    throw;
  }
  stop_threads();
  summary.input_bytes = input_bytes_read.load();
  if (!reader_error.empty()) throw Error("{}", reader_error);
  if (!writer_error.empty()) throw Error("tokenizing: {}", writer_error);
  summary.shards = writer->finish();
  summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  LCTRAIN_CHECK(summary.documents > 0, "no documents found in the inputs ({} bad lines)",
                summary.bad.total());

  std::ofstream manifest(options.out / "manifest.json");
  manifest << manifest_json(options, tokenizer, summary, bytes_per_token).dump(1) << "\n";
  LCTRAIN_CHECK(manifest.good(), "cannot write {}", (options.out / "manifest.json").string());
  return summary;
}

}  // namespace lctrain::data
