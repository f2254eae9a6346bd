#include "data/corpus_reader.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace lctrain::data {
namespace fs = std::filesystem;
namespace {

constexpr size_t kExamples = 5;

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

enum class Compression { none, zstd, gzip };

// Lines of a file, decompressing zstd or gzip on the fly when asked.
class LineSource {
 public:
  LineSource(const fs::path& path, Compression compression)
      : path_(path), in_(path, std::ios::binary), compression_(compression) {
    LCTRAIN_CHECK(in_.good(), "cannot read {}", path.string());
    if (compression == Compression::zstd) {
      stream_.reset(ZSTD_createDStream());
      LCTRAIN_CHECK(stream_ != nullptr, "out of memory opening {}", path.string());
      compressed_.resize(ZSTD_DStreamInSize());
    } else if (compression == Compression::gzip) {
      // 15 + 32: a gzip or zlib header, detected.
      LCTRAIN_CHECK(inflateInit2(&gzip_, 15 + 32) == Z_OK, "cannot start gzip for {}",
                    path.string());
      gzip_open_ = true;
      compressed_.resize(1 << 16);
    }
  }
  ~LineSource() {
    if (gzip_open_) inflateEnd(&gzip_);
  }
  LineSource(const LineSource&) = delete;
  LineSource& operator=(const LineSource&) = delete;

  // The next line without its newline; false at the end. A line longer than `max_bytes` is
  // read past without being kept: `line` is then empty and `dropped` holds its length.
  bool next(std::string& line, uint64_t max_bytes, uint64_t& dropped) {
    dropped = 0;
    while (true) {
      const size_t newline = pending_.find('\n', scan_from_);
      if (newline != std::string::npos) {
        if (dropped > 0 || newline > max_bytes) {
          dropped += newline;
          line.clear();
          pending_.erase(0, newline + 1);
        } else {
          take_line(line, newline);
        }
        scan_from_ = 0;
        return true;
      }
      if (pending_.size() > max_bytes) {
        dropped += pending_.size();  // too long already: the rest of the line is only skipped
        pending_.clear();
      }
      scan_from_ = pending_.size();
      if (!fill()) {
        if (pending_.empty() && dropped == 0) return false;
        if (dropped > 0 || pending_.size() > max_bytes) {
          dropped += pending_.size();
          line.clear();
        } else {
          line.swap(pending_);
        }
        pending_.clear();
        scan_from_ = 0;
        return true;
      }
    }
  }

  // Appends the next decoded bytes of the file (whatever lines they hold) to `text`; false at
  // the end.
  bool next_bytes(std::string& text) {
    if (pending_.empty() && !fill()) return false;
    text += pending_;
    pending_.clear();
    scan_from_ = 0;
    return true;
  }

  uint64_t bytes_read() const { return bytes_read_; }

 private:
  // Moves the first `length` bytes of pending_ (and its newline) out into `line`. A long line
  // takes pending_'s buffer instead of a copy, so it is never held twice.
  void take_line(std::string& line, size_t length) {
    if (length > (1u << 20)) {
      line.swap(pending_);
      pending_.assign(line, length + 1, std::string::npos);
      line.resize(length);
    } else {
      line.assign(pending_, 0, length);
      pending_.erase(0, length + 1);
    }
  }

  struct FreeStream {
    void operator()(ZSTD_DStream* stream) const { ZSTD_freeDStream(stream); }
  };

  // Reads the next compressed block; false at the end of the file.
  bool read_compressed(const char* format, bool member_done) {
    in_.read(compressed_.data(), static_cast<std::streamsize>(compressed_.size()));
    const auto count = static_cast<size_t>(in_.gcount());
    if (count == 0) {
      LCTRAIN_CHECK(member_done, "{}: the {} stream ends in the middle of a frame (truncated)",
                    path_.string(), format);
      return false;
    }
    bytes_read_ += count;
    return true;
  }

  bool fill_gzip() {
    std::vector<char> output(1 << 16);
    while (true) {
      if (gzip_.avail_in == 0) {
        if (!read_compressed("gzip", gzip_member_done_)) return false;
        gzip_.next_in = reinterpret_cast<Bytef*>(compressed_.data());
        gzip_.avail_in = static_cast<uInt>(in_.gcount());
      }
      if (gzip_member_done_) {
        // Another gzip member follows (concatenated .gz files are one stream).
        LCTRAIN_CHECK(inflateReset(&gzip_) == Z_OK, "{}: gzip reset failed", path_.string());
        gzip_member_done_ = false;
      }
      gzip_.next_out = reinterpret_cast<Bytef*>(output.data());
      gzip_.avail_out = static_cast<uInt>(output.size());
      const int result = inflate(&gzip_, Z_NO_FLUSH);
      LCTRAIN_CHECK(result == Z_OK || result == Z_STREAM_END || result == Z_BUF_ERROR,
                    "{}: corrupt gzip data: {}", path_.string(),
                    gzip_.msg != nullptr ? gzip_.msg : "inflate failed");
      gzip_member_done_ = result == Z_STREAM_END;
      const size_t produced = output.size() - gzip_.avail_out;
      if (produced > 0) {
        pending_.append(output.data(), produced);
        return true;
      }
    }
  }

  // Appends more decoded text to pending_; false at the end of the input.
  bool fill() {
    if (compression_ == Compression::gzip) return fill_gzip();
    if (compression_ == Compression::none) {
      char buffer[1 << 16];
      in_.read(buffer, sizeof buffer);
      const auto count = static_cast<size_t>(in_.gcount());
      bytes_read_ += count;
      pending_.append(buffer, count);
      return count > 0;
    }
    std::vector<char> output(ZSTD_DStreamOutSize());
    while (true) {
      if (input_.pos == input_.size) {
        if (!read_compressed("zstd", frame_done_)) return false;
        input_ = {compressed_.data(), static_cast<size_t>(in_.gcount()), 0};
      }
      ZSTD_outBuffer out = {output.data(), output.size(), 0};
      const size_t result = ZSTD_decompressStream(stream_.get(), &out, &input_);
      LCTRAIN_CHECK(!ZSTD_isError(result), "{}: corrupt zstd data: {}", path_.string(),
                    ZSTD_getErrorName(result));
      frame_done_ = result == 0;
      if (out.pos > 0) {
        pending_.append(output.data(), out.pos);
        return true;
      }
    }
  }

  fs::path path_;
  std::ifstream in_;
  Compression compression_;
  std::unique_ptr<ZSTD_DStream, FreeStream> stream_;
  z_stream gzip_{};
  bool gzip_open_ = false;
  bool gzip_member_done_ = false;
  std::vector<char> compressed_;
  ZSTD_inBuffer input_ = {nullptr, 0, 0};
  bool frame_done_ = true;
  std::string pending_;
  size_t scan_from_ = 0;
  uint64_t bytes_read_ = 0;
};

void note(BadLines& bad, int64_t& counter, const fs::path& path, int64_t line,
          const std::string& reason) {
  ++counter;
  if (bad.examples.size() < kExamples) {
    bad.examples.push_back(fmt::format("{}:{}: {}", path.string(), line, reason));
  }
}

}  // namespace

bool is_valid_utf8(const std::string& text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const size_t size = text.size();
  for (size_t i = 0; i < size;) {
    const unsigned char lead = bytes[i];
    size_t length = 0;
    uint32_t code = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2, code = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3, code = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4, code = lead & 0x07;
    } else {
      return false;
    }
    if (i + length > size) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((bytes[i + k] & 0xC0) != 0x80) return false;
      code = (code << 6) | (bytes[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    const uint32_t minimum[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < minimum[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

bool is_corpus_file(const fs::path& path) {
  const std::string name = path.filename().string();
  for (const char* suffix :
       {".txt", ".jsonl", ".json", ".jsonl.zst", ".json.zst", ".jsonl.gz", ".json.gz"}) {
    if (ends_with(name, suffix)) return true;
  }
  return false;
}

namespace {

// Where a .txt file longer than the maximum is cut: after the last newline (else space) in the
// second half of `text`'s first `limit` bytes, else at the last UTF-8 character boundary.
size_t text_cut(const std::string& text, size_t limit) {
  for (const char separator : {'\n', ' '}) {
    const size_t found = text.rfind(separator, limit - 1);
    if (found != std::string::npos && found >= limit / 2) return found + 1;
  }
  size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return cut > 0 ? cut : limit;
}

// A .txt file is one document, split into parts of at most `max_bytes` when longer.
void read_text_file(const fs::path& path, const std::function<void(Document&&)>& consume,
                    BadLines& bad, const std::function<void(uint64_t)>& on_bytes,
                    uint64_t max_bytes) {
  const std::string name = path.filename().string();
  LineSource source(path, Compression::none);
  const size_t limit = static_cast<size_t>(std::max<uint64_t>(max_bytes, 4));
  std::string text;
  int64_t part = 0;
  const auto emit = [&](std::string&& piece) {
    if (!is_valid_utf8(piece)) {
      note(bad, bad.invalid_utf8, path, 1, "not valid UTF-8");
    } else if (!piece.empty()) {
      consume(Document{std::move(piece), name, part});
    }
    ++part;
  };
  while (source.next_bytes(text)) {
    while (text.size() > limit) {
      const size_t cut = text_cut(text, limit);
      emit(text.substr(0, cut));
      text.erase(0, cut);
    }
    on_bytes(source.bytes_read());
  }
  // As the file's lines joined by newlines: a final newline ends the last line, it adds none.
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() || part == 0) emit(std::move(text));
  on_bytes(source.bytes_read());
}

}  // namespace

void read_documents(const fs::path& path, const std::function<void(Document&&)>& consume,
                    BadLines& bad, const std::function<void(uint64_t)>& on_bytes,
                    uint64_t max_document_bytes) {
  const std::string name = path.filename().string();
  if (ends_with(name, ".txt")) {
    read_text_file(path, consume, bad, on_bytes, max_document_bytes);
    return;
  }
  LCTRAIN_CHECK(is_corpus_file(path),
                "{}: unsupported input (use .jsonl, .jsonl.zst, .jsonl.gz or .txt)", path.string());
  const bool zstd = ends_with(name, ".zst");
  const bool gzip = ends_with(name, ".gz");
  LineSource source(path, zstd ? Compression::zstd : gzip ? Compression::gzip : Compression::none);
  std::string line;
  int64_t number = 0;
  uint64_t dropped = 0;
  while (source.next(line, max_document_bytes, dropped)) {
    ++number;
    if (number % 1024 == 0) on_bytes(source.bytes_read());
    if (dropped > 0) {
      note(bad, bad.too_long, path, number,
           fmt::format("{} bytes, above the maximum document size of {} bytes", dropped,
                       max_document_bytes));
      continue;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& error) {
      // nlohmann rejects ill-formed UTF-8 inside strings with a message that says so.
      const bool utf8 = std::string(error.what()).find("UTF-8") != std::string::npos;
      note(bad, utf8 ? bad.invalid_utf8 : bad.invalid_json, path, number,
           utf8 ? "not valid UTF-8" : "not JSON");
      continue;
    }
    // A long line's buffer is given back now rather than held beside its parsed text.
    if (line.capacity() > (4u << 20)) std::string().swap(line);
    if (!record.is_object() || !record.contains("text") || !record.at("text").is_string()) {
      note(bad, bad.missing_text, path, number, "no \"text\" string");
      continue;
    }
    Document document{std::move(record.at("text").get_ref<std::string&>()), name};
    if (record.contains("meta") && record.at("meta").is_object() &&
        record.at("meta").contains("pile_set_name") &&
        record.at("meta").at("pile_set_name").is_string()) {
      document.set_name = record.at("meta").at("pile_set_name").get<std::string>();
    }
    record = nullptr;
    consume(std::move(document));
  }
  on_bytes(source.bytes_read());
}

}  // namespace lctrain::data
