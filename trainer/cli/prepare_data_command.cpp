// `lctrain prepare-data --input PATH... --tokenizer tokenizer.model --out DIR [--workers N]`:
// corpora (.jsonl.zst as the Pile ships, .jsonl, .txt) tokenized into packed token shards.
#include <unistd.h>

#include "cli/commands.h"
#include "data/prepare_data.h"
#include "io/sharded_safetensors.h"
#include "util/error.h"
#include "util/logging.h"

namespace lctrain::cli {

Action add_prepare_data_command(CLI::App& app) {
  struct Options {
    std::vector<std::string> inputs;
    std::string tokenizer;
    std::string out;
    int workers = 0;
    int64_t tokens_per_shard = 100'000'000;
    bool add_bos = false;
    std::string max_document_bytes = "64MB";
    std::string piece_bytes = "16KiB";
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand(
      "prepare-data",
      "Tokenize corpora (.jsonl.zst, .jsonl.gz, .jsonl, .txt) into packed token shards");
  command->add_option("--input", options->inputs, "input files")->required();
  command->add_option("--tokenizer", options->tokenizer, "SentencePiece tokenizer.model")
      ->required();
  command->add_option("--out", options->out, "output folder for shards + manifest.json")
      ->required();
  command->add_option("--workers", options->workers, "tokenizer threads (0 = every core)")
      ->capture_default_str();
  command->add_option("--tokens-per-shard", options->tokens_per_shard, "shard size in tokens")
      ->capture_default_str();
  command->add_flag("--add-bos", options->add_bos, "also put BOS before every document");
  command
      ->add_option("--max-document-bytes", options->max_document_bytes,
                   "largest document read whole: longer JSON lines are skipped (counted as "
                   "too_long), longer .txt files split into several documents")
      ->capture_default_str();
  command
      ->add_option("--piece-bytes", options->piece_bytes,
                   "longer documents are tokenized in pieces of about this size, in parallel "
                   "(same tokens, bounded memory)")
      ->capture_default_str();

  return [options] {
    data::PrepareOptions prepare;
    for (const auto& input : options->inputs) prepare.inputs.emplace_back(input);
    prepare.tokenizer = options->tokenizer;
    prepare.out = options->out;
    prepare.workers = options->workers;
    prepare.tokens_per_shard = options->tokens_per_shard;
    prepare.add_bos = options->add_bos;
    prepare.max_document_bytes = io::parse_byte_size(options->max_document_bytes);
    prepare.piece_bytes = static_cast<int64_t>(io::parse_byte_size(options->piece_bytes));
    LCTRAIN_CHECK(prepare.max_document_bytes > 0, "--max-document-bytes must be positive");
    LCTRAIN_CHECK(prepare.piece_bytes >= 1024, "--piece-bytes must be at least 1KB, got {}",
                  options->piece_bytes);
    prepare.progress = ::isatty(STDERR_FILENO) != 0;
    const data::PrepareSummary summary = data::prepare_data(prepare);
    log()->info(
        "{} documents, {} tokens, {:.1f} MB of text in {} shard(s) under {} in {:.2f} s: "
        "{:.2f} MB/s, {:.0f} tokens/s",
        summary.documents, summary.tokens, summary.text_bytes / 1e6, summary.shards.size(),
        options->out, summary.seconds, summary.text_bytes / 1e6 / summary.seconds,
        summary.tokens / summary.seconds);
    for (const auto& [name, counts] : summary.sets) {
      log()->info("  {}: {} documents, {} tokens", name, counts.documents, counts.tokens);
    }
    if (summary.split_documents > 0) {
      log()->warn("{} document(s) above --max-document-bytes {} were split into parts",
                  summary.split_documents, options->max_document_bytes);
    }
    if (summary.bad.total() > 0) {
      log()->warn(
          "skipped {} bad lines: {} not JSON, {} without text, {} not UTF-8, {} above "
          "--max-document-bytes",
          summary.bad.total(), summary.bad.invalid_json, summary.bad.missing_text,
          summary.bad.invalid_utf8, summary.bad.too_long);
      for (const auto& example : summary.bad.examples) log()->warn("  {}", example);
    }
  };
}

}  // namespace lctrain::cli
