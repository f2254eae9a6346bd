#include "io/zip_archive.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "util/error.h"
#include "util/mapped_file.h"

namespace lctrain::io {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfCentralDirectory = 0x06054b50;
constexpr uint32_t kZip64End = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint64_t kEndRecordSize = 22;
constexpr uint64_t kMaxCommentSize = 0xffff;

// Bounds-checked little-endian reads from the mapped file.
class Reader {
 public:
  Reader(const char* data, uint64_t size) : data_(data), size_(size) {}

  bool fits(uint64_t offset, uint64_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }
  uint64_t get(uint64_t offset, int bytes, const char* what) const {
    LCTRAIN_CHECK(fits(offset, static_cast<uint64_t>(bytes)),
                  "truncated: {} at byte {} lies past the end of the {}-byte file", what, offset,
                  size_);
    uint64_t value = 0;
    for (int index = bytes - 1; index >= 0; --index) {
      value = (value << 8) | static_cast<unsigned char>(data_[offset + index]);
    }
    return value;
  }
  std::string text(uint64_t offset, uint64_t length, const char* what) const {
    LCTRAIN_CHECK(fits(offset, length), "truncated: {} at byte {} lies past the end of the file",
                  what, offset);
    return std::string(data_ + offset, length);
  }

 private:
  const char* data_;
  uint64_t size_;
};

std::optional<uint64_t> find_end_record(const Reader& reader, uint64_t size) {
  if (size < kEndRecordSize) return std::nullopt;
  const uint64_t lowest =
      size >= kEndRecordSize + kMaxCommentSize ? size - kEndRecordSize - kMaxCommentSize : 0;
  for (uint64_t offset = size - kEndRecordSize + 1; offset-- > lowest;) {
    if (reader.get(offset, 4, "end record") == kEndOfCentralDirectory) return offset;
  }
  return std::nullopt;
}

struct Directory {
  uint64_t entries = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

Directory read_directory_location(const Reader& reader, uint64_t end) {
  Directory directory;
  directory.entries = reader.get(end + 10, 2, "entry count");
  directory.size = reader.get(end + 12, 4, "central directory size");
  directory.offset = reader.get(end + 16, 4, "central directory offset");
  const bool zip64 =
      directory.entries == 0xffff || directory.size == 0xffffffff || directory.offset == 0xffffffff;
  if (!zip64) return directory;
  LCTRAIN_CHECK(end >= 20 && reader.get(end - 20, 4, "zip64 locator") == kZip64Locator,
                "zip64 archive without a zip64 end-of-central-directory locator");
  const uint64_t record = reader.get(end - 20 + 8, 8, "zip64 end record offset");
  LCTRAIN_CHECK(reader.get(record, 4, "zip64 end record") == kZip64End,
                "no zip64 end-of-central-directory record at byte {}", record);
  directory.entries = reader.get(record + 32, 8, "zip64 entry count");
  directory.size = reader.get(record + 40, 8, "zip64 central directory size");
  directory.offset = reader.get(record + 48, 8, "zip64 central directory offset");
  return directory;
}

// Replaces the 32-bit fields that overflowed (0xffffffff) with their values from the zip64 extra
// field, which lists only those, in this order.
void apply_zip64_extra(const Reader& reader, uint64_t extra, uint64_t extra_size,
                       uint64_t& uncompressed, uint64_t& compressed, uint64_t& local_offset) {
  uint64_t position = extra;
  while (position + 4 <= extra + extra_size) {
    const uint64_t id = reader.get(position, 2, "extra field");
    const uint64_t length = reader.get(position + 2, 2, "extra field");
    if (id == 0x0001) {
      uint64_t field = position + 4;
      for (uint64_t* value : {&uncompressed, &compressed, &local_offset}) {
        if (*value != 0xffffffff) continue;
        LCTRAIN_CHECK(field + 8 <= position + 4 + length, "zip64 extra field is too short");
        *value = reader.get(field, 8, "zip64 extra field");
        field += 8;
      }
      return;
    }
    position += 4 + length;
  }
}

}  // namespace

ZipArchive ZipArchive::open(const std::filesystem::path& path) {
  return with_context(path.string(), [&] {
    ZipArchive archive;
    archive.path_ = path;
    archive.mapping_ = MappedFile::open(path, MappedFile::Access::kCopyOnWrite);
    const uint64_t size = archive.mapping_->size();
    const Reader reader(reinterpret_cast<const char*>(archive.mapping_->data()), size);
    const auto end = find_end_record(reader, size);
    if (!end) {
      // torch.save before PyTorch 1.6 wrote a bare pickle stream (PROTO 2 opcode first).
      const bool legacy = size >= 2 && reader.get(0, 1, "magic") == 0x80;
      LCTRAIN_CHECK(!legacy,
                    "is in the legacy torch.save format (PyTorch < 1.6), not a zip archive; "
                    "re-save it with torch.save from a newer PyTorch");
      throw Error(
          "is not a zip archive or is truncated (no end-of-central-directory record in its {} "
          "bytes)",
          size);
    }
    const Directory directory = read_directory_location(reader, *end);
    LCTRAIN_CHECK(reader.fits(directory.offset, directory.size),
                  "truncated: the central directory ({} bytes at {}) lies past the end of the file",
                  directory.size, directory.offset);
    uint64_t position = directory.offset;
    for (uint64_t index = 0; index < directory.entries; ++index) {
      LCTRAIN_CHECK(reader.get(position, 4, "central header") == kCentralHeader,
                    "central directory entry {} is corrupt (bad signature at byte {})", index,
                    position);
      const uint64_t flags = reader.get(position + 8, 2, "flags");
      const uint64_t method = reader.get(position + 10, 2, "method");
      const auto crc = static_cast<uint32_t>(reader.get(position + 16, 4, "crc"));
      uint64_t compressed = reader.get(position + 20, 4, "compressed size");
      uint64_t uncompressed = reader.get(position + 24, 4, "size");
      const uint64_t name_size = reader.get(position + 28, 2, "name length");
      const uint64_t extra_size = reader.get(position + 30, 2, "extra length");
      const uint64_t comment_size = reader.get(position + 32, 2, "comment length");
      uint64_t local = reader.get(position + 42, 4, "local header offset");
      const std::string name = reader.text(position + 46, name_size, "entry name");
      apply_zip64_extra(reader, position + 46 + name_size, extra_size, uncompressed, compressed,
                        local);
      position += 46 + name_size + extra_size + comment_size;

      LCTRAIN_CHECK((flags & 1) == 0, "entry '{}' is encrypted", name);
      LCTRAIN_CHECK(method == 0 && compressed == uncompressed,
                    "entry '{}' is compressed (method {}); torch.save stores entries uncompressed",
                    name, method);
      LCTRAIN_CHECK(reader.get(local, 4, "local header") == kLocalHeader,
                    "entry '{}': no local header at byte {}", name, local);
      const uint64_t local_name = reader.get(local + 26, 2, "local name length");
      const uint64_t local_extra = reader.get(local + 28, 2, "local extra length");
      Entry entry;
      entry.offset = local + 30 + local_name + local_extra;
      entry.size = uncompressed;
      entry.crc32 = crc;
      LCTRAIN_CHECK(reader.fits(entry.offset, entry.size),
                    "truncated: entry '{}' ({} bytes at byte {}) reaches past the end of the "
                    "{}-byte file",
                    name, entry.size, entry.offset, size);
      LCTRAIN_CHECK(archive.entries_.emplace(name, entry).second, "entry '{}' appears twice", name);
    }
    return archive;
  });
}

std::vector<std::string> ZipArchive::names() const {
  std::vector<std::string> names;
  names.reserve(entries_.size());
  for (const auto& entry : entries_) names.push_back(entry.first);
  return names;
}

bool ZipArchive::contains(const std::string& name) const { return entries_.count(name) != 0; }

const ZipArchive::Entry& ZipArchive::entry(const std::string& name) const {
  const auto found = entries_.find(name);
  LCTRAIN_CHECK(found != entries_.end(), "{}: has no entry '{}'", path_.string(), name);
  return found->second;
}

std::string_view ZipArchive::read(const std::string& name) const {
  const Entry& found = entry(name);
  return {reinterpret_cast<const char*>(mapping_->data()) + found.offset, found.size};
}

std::shared_ptr<char> ZipArchive::data(const std::string& name) const {
  // Aliasing constructor: points into the entry, owns the mapping.
  return std::shared_ptr<char>(
      mapping_, reinterpret_cast<char*>(mapping_->writable_data()) + entry(name).offset);
}

uint64_t ZipArchive::size(const std::string& name) const { return entry(name).size; }

bool ZipArchive::crc_matches(const std::string& name) const {
  const std::string_view bytes = read(name);
  uLong crc = ::crc32(0L, Z_NULL, 0);
  std::string_view rest = bytes;
  while (!rest.empty()) {  // crc32() takes a 32-bit length
    const auto chunk = static_cast<uInt>(std::min<size_t>(rest.size(), 1u << 30));
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(rest.data()), chunk);
    rest.remove_prefix(chunk);
  }
  return static_cast<uint32_t>(crc) == entry(name).crc32;
}

}  // namespace lctrain::io
