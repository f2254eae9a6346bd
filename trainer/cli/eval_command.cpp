// `lctrain eval ppl`: sliding-window perplexity at several windows (the paper's Table 1 protocol).
// `lctrain eval passkey`: passkey retrieval accuracy per distance and the effective window.
// Both print a table and can write the same figures as JSON (--json FILE).
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "eval/eval_documents.h"
#include "eval/passkey.h"
#include "eval/sliding_window.h"
#include "model/memory_estimate.h"
#include "model/rope_windows.h"
#include "util/error.h"
#include "util/logging.h"
#include "util/progress_bar.h"

namespace lctrain::cli {
namespace {

struct PerplexityOptions {
  ModelOptions model;
  std::string data;
  std::vector<int64_t> contexts;
  eval::SlidingWindowOptions window;
  eval::DocumentSelection selection;
  std::string json_file;
};

struct PasskeyOptions {
  ModelOptions model;
  std::vector<int64_t> lengths;
  int trials = 10;
  uint64_t seed = 0;
  std::string json_file;
};

void write_json(const std::string& file, const nlohmann::json& json) {
  if (file.empty()) return;
  std::ofstream out(file);
  out << json.dump(1) << "\n";
  LCTRAIN_CHECK(out.good(), "cannot write {}", file);
  log()->info("wrote {}", file);
}

void run_perplexity(const PerplexityOptions& options) {
  LCTRAIN_CHECK(!options.contexts.empty(), "--context needs at least one window size");
  for (const int64_t context : options.contexts) {
    LCTRAIN_CHECK(options.window.stride > 0 && options.window.stride < context,
                  "--stride {} must be positive and smaller than every window (--context {})",
                  options.window.stride, context);
  }
  options.selection.validate();
  // Token shards need no tokenizer unless BOS is added; text always does. What the data is (or
  // that it is nothing usable) is settled first, so that an empty folder is not blamed on a
  // missing tokenizer.
  const bool shards = eval::is_token_shards(options.data);
  if (!shards) eval::corpus_files(options.data);
  LlamaModel model = options.model.load();
  std::optional<io::Tokenizer> tokenizer;
  if (!shards || options.selection.add_bos) tokenizer = options.model.load_tokenizer();
  const auto documents = eval::load_eval_documents(options.data, tokenizer ? &*tokenizer : nullptr,
                                                   model.config().eos_token_id, options.selection);
  int64_t total_tokens = 0;
  for (const auto& document : documents)
    total_tokens += static_cast<int64_t>(document.tokens.size());
  log()->info("{}: {} documents, {} tokens; model {} with RoPE {}", options.data, documents.size(),
              total_tokens, options.model.source(), model.runtime_rope().describe());

  nlohmann::json report{{"model", options.model.source()},
                        {"rope_scaling", model.runtime_rope().describe()},
                        {"data", options.data},
                        {"stride", options.window.stride},
                        {"documents", documents.size()},
                        {"windows", nlohmann::json::array()},
                        {"per_document", nlohmann::json::array()}};
  for (const auto& document : documents) {
    report["per_document"].push_back({{"name", document.name},
                                      {"tokens", document.tokens.size()},
                                      {"perplexity", nlohmann::json::object()}});
  }
  ProgressBar progress(static_cast<int64_t>(options.contexts.size() * documents.size()), true);
  int64_t done = 0;
  for (const int64_t context : options.contexts) {
    eval::SlidingWindowOptions window = options.window;
    window.context = context;
    const auto started = std::chrono::steady_clock::now();
    eval::Score overall;
    for (size_t index = 0; index < documents.size(); ++index) {
      const eval::Score score = eval::score_document(model, documents[index].tokens, window);
      overall += score;
      report["per_document"][index]["perplexity"][std::to_string(context)] = score.perplexity();
      progress.update(++done, fmt::format("window {} ppl {:.3f}", context, overall.perplexity()));
    }
    const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - started;
    progress.clear();
    // A perplexity over no token is no figure at all (NaN in the table, null in the JSON).
    LCTRAIN_CHECK(overall.tokens > 0,
                  "{}: no token was scored at window {} ({} documents of {} tokens): nothing to "
                  "report",
                  options.data, context, documents.size(), total_tokens);
    log()->info("window {:>6}: perplexity {:.4f} over {} tokens ({:.1f} s, {:.0f} tokens/s)",
                context, overall.perplexity(), overall.tokens, seconds.count(),
                overall.tokens / std::max(seconds.count(), 1e-9));
    report["windows"].push_back({{"context", context},
                                 {"perplexity", overall.perplexity()},
                                 {"nll_sum", overall.nll_sum},
                                 {"tokens", overall.tokens},
                                 {"seconds", seconds.count()}});
  }
  progress.clear();

  // The table: overall first, then each document (up to 20 rows; the JSON has them all).
  std::cout << fmt::format("{:<32}",
                           "perplexity (stride " + std::to_string(options.window.stride) + ")");
  for (const int64_t context : options.contexts) std::cout << fmt::format(" {:>10}", context);
  std::cout << "\n" << fmt::format("{:<32}", "all documents");
  for (const auto& row : report["windows"]) {
    std::cout << fmt::format(" {:>10.3f}", row["perplexity"].get<double>());
  }
  std::cout << "\n";
  const size_t shown = std::min<size_t>(documents.size(), 20);
  for (size_t index = 0; index < shown; ++index) {
    std::cout << fmt::format("{:<32}", documents[index].name.substr(0, 31));
    for (const int64_t context : options.contexts) {
      std::cout << fmt::format(
          " {:>10.3f}",
          report["per_document"][index]["perplexity"][std::to_string(context)].get<double>());
    }
    std::cout << "\n";
  }
  if (shown < documents.size()) {
    std::cout << "(" << documents.size() - shown << " more documents in the JSON report)\n";
  }
  write_json(options.json_file, report);
}

void run_passkey(const PasskeyOptions& options) {
  LCTRAIN_CHECK(!options.lengths.empty(), "--lengths needs at least one distance");
  LCTRAIN_CHECK(options.trials > 0, "--trials must be positive, got {}", options.trials);
  const io::Tokenizer tokenizer = options.model.load_tokenizer();
  // A prompt holds at least k tokens; one that cannot fit is refused before the weights are read.
  const io::ModelLoadOptions load = options.model.to_load_options();
  const LlamaConfig config = options.model.load_config().config;
  for (const int64_t length : options.lengths) {
    LCTRAIN_CHECK(length > 0, "--lengths must be positive, got {}", length);
    check_fits_in_memory(estimate_generation_memory(config, load.dtype, load.device,
                                                    static_cast<double>(length), 8.0),
                         load.device, fmt::format("eval passkey at k = {}", length));
  }
  LlamaModel model = options.model.load();
  std::mt19937_64 random(options.seed);
  std::vector<eval::PasskeyResult> results;
  ProgressBar progress(static_cast<int64_t>(options.lengths.size()) * options.trials, true);
  int64_t done = 0;
  // The window the model runs at under the RoPE of this run (dynamic NTK's config says L).
  LlamaConfig runtime_config = model.config();
  runtime_config.rope_scaling = model.runtime_rope();
  const int64_t window = rope_windows(runtime_config).extended;
  for (const int64_t length : options.lengths) {
    eval::PasskeyResult result;
    result.requested = length;
    for (int trial = 0; trial < options.trials; ++trial) {
      const auto prompt =
          eval::build_passkey_prompt(tokenizer, eval::random_passkey(random), length);
      result.distance = prompt.distance;
      result.prompt_tokens = static_cast<int64_t>(prompt.tokens.size());
      result.successes += eval::retrieve_passkey(model, tokenizer, prompt) ? 1 : 0;
      ++result.trials;
      progress.update(++done,
                      fmt::format("k {} accuracy {}/{}", length, result.successes, result.trials));
    }
    if (result.prompt_tokens > window) {
      progress.clear();
      log()->warn("k {}: the prompt ({} tokens) is longer than the model's window ({})", length,
                  result.prompt_tokens, window);
    }
    results.push_back(result);
  }
  progress.clear();
  const int64_t effective = eval::effective_context_window(results);

  nlohmann::json report{{"model", options.model.source()},
                        {"rope_scaling", model.runtime_rope().describe()},
                        {"trials", options.trials},
                        {"seed", options.seed},
                        {"effective_context_window", effective},
                        {"results", nlohmann::json::array()}};
  std::cout << fmt::format("{:>10} {:>10} {:>14} {:>10}\n", "k", "distance", "prompt tokens",
                           "accuracy");
  for (const auto& result : results) {
    std::cout << fmt::format("{:>10} {:>10} {:>14} {:>9.0f}%\n", result.requested, result.distance,
                             result.prompt_tokens, 100.0 * result.accuracy());
    report["results"].push_back({{"k", result.requested},
                                 {"distance", result.distance},
                                 {"prompt_tokens", result.prompt_tokens},
                                 {"trials", result.trials},
                                 {"successes", result.successes},
                                 {"accuracy", result.accuracy()}});
  }
  std::cout << "effective context window: " << effective << " tokens\n";
  write_json(options.json_file, report);
}

}  // namespace

Action add_eval_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand("eval", "Evaluate a model the way the paper does");
  command->require_subcommand(1);

  auto ppl = std::make_shared<PerplexityOptions>();
  CLI::App* ppl_command = command->add_subcommand(
      "ppl", "Sliding-window perplexity (Press et al.) at one or more window sizes");
  ppl->model.add_to(*ppl_command);
  ppl_command
      ->add_option("--data", ppl->data,
                   "token shards folder, or .jsonl/.jsonl.zst/.txt file(s) in a folder or alone")
      ->required();
  ppl_command->add_option("--context", ppl->contexts, "window sizes, e.g. 2048,4096,8192")
      ->delimiter(',')
      ->required();
  ppl_command->add_option("--stride", ppl->window.stride, "window stride S")->capture_default_str();
  ppl_command->add_option("--max-docs", ppl->selection.max_documents, "documents to score; 0 = all")
      ->capture_default_str();
  ppl_command
      ->add_option("--min-tokens", ppl->selection.min_tokens, "skip documents shorter than this")
      ->capture_default_str();
  ppl_command
      ->add_option("--max-tokens", ppl->selection.max_tokens,
                   "truncate documents to this many tokens; 0 = no limit")
      ->capture_default_str();
  ppl_command->add_flag("--add-bos", ppl->selection.add_bos, "put BOS before each document");
  ppl_command->add_option("--batch-tokens", ppl->window.batch_tokens, "tokens per forward pass")
      ->capture_default_str();
  ppl_command->add_option("--json", ppl->json_file, "also write the figures to this JSON file");

  auto passkey = std::make_shared<PasskeyOptions>();
  CLI::App* passkey_command =
      command->add_subcommand("passkey", "Passkey retrieval accuracy and effective window");
  passkey->model.add_to(*passkey_command);
  passkey_command
      ->add_option("--lengths", passkey->lengths,
                   "distances k of the key from the end of the prompt, e.g. 256,512,1024")
      ->delimiter(',')
      ->required();
  passkey_command->add_option("--trials", passkey->trials, "prompts per distance")
      ->capture_default_str();
  passkey_command->add_option("--seed", passkey->seed, "seed of the random keys")
      ->capture_default_str();
  passkey_command->add_option("--json", passkey->json_file, "also write the figures to JSON");

  return [=] {
    if (ppl_command->parsed()) run_perplexity(*ppl);
    if (passkey_command->parsed()) run_passkey(*passkey);
  };
}

}  // namespace lctrain::cli
