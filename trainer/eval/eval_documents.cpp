#include "eval/eval_documents.h"

#include <algorithm>

#include "data/corpus_reader.h"
#include "data/token_sequences.h"
#include "util/error.h"
#include "util/logging.h"

namespace lctrain::eval {
namespace fs = std::filesystem;
namespace {

// Applies the selection to one document; returns false once enough documents are kept.
bool keep(std::vector<EvalDocument>& kept, EvalDocument&& document,
          const DocumentSelection& selection) {
  // --min-tokens looks at the whole document, before --max-tokens truncates it.
  if (static_cast<int64_t>(document.tokens.size()) >= selection.min_tokens) {
    if (selection.max_tokens > 0 &&
        static_cast<int64_t>(document.tokens.size()) > selection.max_tokens) {
      document.tokens.resize(static_cast<size_t>(selection.max_tokens));
    }
    // A document of one token has nothing to predict: it would be scored over zero tokens.
    if (document.tokens.size() >= 2) kept.push_back(std::move(document));
  }
  return selection.max_documents <= 0 ||
         static_cast<int64_t>(kept.size()) < selection.max_documents;
}

std::vector<EvalDocument> from_shards(const fs::path& dir, const io::Tokenizer* tokenizer,
                                      int64_t eos_id, const DocumentSelection& selection) {
  const TokenStream stream = TokenStream::open(dir);
  std::vector<int64_t> all(static_cast<size_t>(stream.size()));
  stream.read(0, stream.size(), all.data());
  std::vector<EvalDocument> kept;
  auto begin = all.begin();
  for (int64_t index = 0; begin != all.end(); ++index) {
    const auto eos = std::find(begin, all.end(), eos_id);
    EvalDocument document{fmt::format("doc {}", index), {}};
    if (selection.add_bos) document.tokens.push_back(tokenizer->bos_id());
    document.tokens.insert(document.tokens.end(), begin, eos);
    begin = eos == all.end() ? eos : eos + 1;
    if (!keep(kept, std::move(document), selection)) break;
  }
  return kept;
}

std::vector<EvalDocument> from_corpus(const std::vector<fs::path>& files,
                                      const io::Tokenizer& tokenizer,
                                      const DocumentSelection& selection) {
  std::vector<EvalDocument> kept;
  for (const fs::path& file : files) {
    data::BadLines bad;
    int64_t index = 0;
    bool more = true;
    // The reader streams; once enough documents are kept the rest of the file is only skipped.
    data::read_documents(
        file,
        [&](data::Document&& text) {
          ++index;
          if (!more) return;
          EvalDocument document{
              fmt::format("{}#{} ({})", file.filename().string(), index, text.set_name),
              tokenizer.encode(text.text, selection.add_bos, false)};
          more = keep(kept, std::move(document), selection);
        },
        bad, [](uint64_t) {});
    if (bad.total() > 0) {
      log()->warn("{}: {} bad line(s) skipped, e.g. {}", file.string(), bad.total(),
                  bad.examples.empty() ? "" : bad.examples.front());
    }
    if (!more) break;
  }
  return kept;
}

}  // namespace

void DocumentSelection::validate() const {
  LCTRAIN_CHECK(max_documents >= 0, "--max-docs must be 0 (all) or positive, got {}",
                max_documents);
  LCTRAIN_CHECK(min_tokens >= 0, "--min-tokens must not be negative, got {}", min_tokens);
  // The first token of a document is never scored (it has no context to be predicted from).
  LCTRAIN_CHECK(max_tokens == 0 || max_tokens >= 2,
                "--max-tokens {} leaves nothing to score: a document's first token is not "
                "predicted, so it must be 0 (no limit) or at least 2",
                max_tokens);
}

bool is_token_shards(const fs::path& data) {
  return fs::is_directory(data) && fs::exists(data / "manifest.json");
}

std::vector<fs::path> corpus_files(const fs::path& data) {
  LCTRAIN_CHECK(fs::exists(data), "evaluation data {} does not exist", data.string());
  if (!fs::is_directory(data)) return {data};
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(data)) {
    if (entry.is_regular_file() && data::is_corpus_file(entry.path()))
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  LCTRAIN_CHECK(!files.empty(),
                "{}: neither token shards (manifest.json) nor .jsonl/.jsonl.zst/.txt files",
                data.string());
  return files;
}

std::vector<EvalDocument> load_eval_documents(const fs::path& data, const io::Tokenizer* tokenizer,
                                              int64_t eos_id, const DocumentSelection& selection) {
  selection.validate();
  LCTRAIN_CHECK(fs::exists(data), "evaluation data {} does not exist", data.string());
  LCTRAIN_CHECK(!selection.add_bos || tokenizer != nullptr,
                "--add-bos needs a tokenizer (its BOS id)");
  std::vector<EvalDocument> documents;
  if (is_token_shards(data)) {
    documents = from_shards(data, tokenizer, eos_id, selection);
  } else {
    const std::vector<fs::path> files = corpus_files(data);
    LCTRAIN_CHECK(tokenizer != nullptr, "{}: text needs a tokenizer", data.string());
    documents = from_corpus(files, *tokenizer, selection);
  }
  LCTRAIN_CHECK(!documents.empty(), "{}: no document of at least {} tokens to evaluate",
                data.string(), std::max<int64_t>(selection.min_tokens, 2));
  return documents;
}

}  // namespace lctrain::eval
