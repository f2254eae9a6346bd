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

struct Batch {
  int64_t index = 0;
  std::vector<Document> documents;
  std::vector<std::vector<int64_t>> tokens;  // filled by a worker
  std::string error;                         // a worker's failure, rethrown by the writer
};

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
          {"inputs", inputs},
          {"documents", summary.documents},
          {"tokens", summary.tokens},
          {"bytes", summary.text_bytes},
          {"sets", sets},
          {"bad_lines",
           {{"invalid_json", summary.bad.invalid_json},
            {"missing_text", summary.bad.missing_text},
            {"invalid_utf8", summary.bad.invalid_utf8},
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

  // Reader: documents in input order, in numbered batches.
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
      uint64_t done_bytes = 0;
      for (const auto& input : options.inputs) {
        read_documents(
            input,
            [&](Document&& document) {
              batch.documents.push_back(std::move(document));
              if (batch.documents.size() == kBatchDocuments) flush();
            },
            summary.bad, [&](uint64_t bytes) { input_bytes_read = done_bytes + bytes; });
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
          for (const Document& document : batch->documents) {
            batch->tokens.push_back(tokenizer.encode(document.text, options.add_bos, true));
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
          writer->append(ready.tokens[d]);
          SetCounts& set = summary.sets[ready.documents[d].set_name];
          ++set.documents;
          set.tokens += static_cast<int64_t>(ready.tokens[d].size());
          set.bytes += static_cast<int64_t>(ready.documents[d].text.size());
          ++summary.documents;
          summary.tokens += static_cast<int64_t>(ready.tokens[d].size());
          summary.text_bytes += static_cast<int64_t>(ready.documents[d].text.size());
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
