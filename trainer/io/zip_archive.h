// Read-only access to the entries of a zip archive as torch.save writes it (entries stored, not
// compressed). The file is memory-mapped once and entries are views into the mapping, so a 1 GB
// checkpoint is neither read twice nor copied to be opened.
//
// Hand-written rather than zlib's minizip: minizip streams entries through copies into buffers,
// while all we need from a stored entry is its offset in the file; the format's part we use (end
// of central directory, zip64 records, central and local headers) is small, and this keeps the
// project free of one more Debian package on every machine.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/mapped_file.h"

namespace lctrain::io {

class ZipArchive {
 public:
  // Maps the file and reads its central directory. Throws lctrain::Error naming the file when it
  // is not a zip (the legacy pre-1.6 torch.save format is told apart), is truncated, or holds an
  // entry that is compressed, encrypted or reaches past the end of the file.
  static ZipArchive open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  // The entry's bytes, valid while this archive or a pointer from data() lives. Throws if absent.
  std::string_view read(const std::string& name) const;
  // The entry's bytes as a pointer that keeps the whole mapping alive (for tensors aliasing it).
  // The pages are mapped copy-on-write: writing through it never reaches the file.
  std::shared_ptr<char> data(const std::string& name) const;
  uint64_t size(const std::string& name) const;
  // Whether the entry's CRC-32 matches its central directory record. One pass over the bytes, so
  // callers check small entries (the pickle) rather than gigabytes of tensor data.
  bool crc_matches(const std::string& name) const;

 private:
  struct Entry {
    uint64_t offset = 0;  // of the data, from the start of the file
    uint64_t size = 0;
    uint32_t crc32 = 0;
  };

  ZipArchive() = default;
  const Entry& entry(const std::string& name) const;

  std::filesystem::path path_;
  std::shared_ptr<const MappedFile> mapping_;
  std::map<std::string, Entry> entries_;
};

}  // namespace lctrain::io
