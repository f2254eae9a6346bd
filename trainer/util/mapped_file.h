// A whole file mapped into memory (private to this process), the one mmap wrapper of the project:
// the safetensors reader, the zip reader of torch.save archives and the token shards use it.
// Opening refuses anything but a regular file (a directory with EISDIR's text, a FIFO without
// waiting on it); errors carry no file name, callers add it with their context.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

namespace lctrain {

// Drops this process's pages covering [data, data + size) (widened to whole pages) of a file
// mapping, as MappedFile::release does, for callers that hold a pointer into a mapping (tensors
// aliasing a torch.save archive). `data` must point into a file mapping, never into heap memory.
void release_mapped_pages(const void* data, uint64_t size);

class MappedFile {
 public:
  enum class Access {
    kReadOnly,
    // Writable pages that are never written back: tensors aliasing the file may be modified in
    // place without a crash and without touching the file.
    kCopyOnWrite,
  };
  // Access pattern hint for the kernel's readahead.
  enum class Pattern { kNormal, kRandom };

  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path, Access access,
                                                Pattern pattern = Pattern::kNormal);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // nullptr for an empty file.
  const unsigned char* data() const { return data_; }
  // Copy-on-write mappings only.
  unsigned char* writable_data() const;
  uint64_t size() const { return size_; }

  // Drops this process's pages of bytes [offset, offset + size) (widened to whole pages): read
  // pages count in RSS until unmapped, so a reader that streams through a file releases what it
  // has used. Later reads fault the bytes back in from the file; pages a copy-on-write mapping
  // has written would revert to the file's bytes, so callers release only pages they only read.
  void release(uint64_t offset, uint64_t size) const;

 private:
  MappedFile() = default;

  unsigned char* data_ = nullptr;
  uint64_t size_ = 0;
  Access access_ = Access::kReadOnly;
};

}  // namespace lctrain
