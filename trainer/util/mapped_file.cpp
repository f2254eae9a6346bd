#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "util/error.h"
#include "util/file_descriptor.h"

namespace lctrain {

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& path, Access access,
                                                   Pattern pattern) {
  // O_NONBLOCK: a FIFO must be rejected below, not block open(); no effect on regular files.
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  LCTRAIN_CHECK(fd.get() >= 0, "cannot open: {}", errno_text());
  struct stat status {};
  LCTRAIN_CHECK(::fstat(fd.get(), &status) == 0, "cannot stat: {}", errno_text());
  LCTRAIN_CHECK(!S_ISDIR(status.st_mode), "cannot read: {}", std::strerror(EISDIR));
  LCTRAIN_CHECK(S_ISREG(status.st_mode), "not a regular file");

  std::shared_ptr<MappedFile> file(new MappedFile());
  file->size_ = static_cast<uint64_t>(status.st_size);
  file->access_ = access;
  if (file->size_ == 0) return file;
  const int protection = access == Access::kCopyOnWrite ? PROT_READ | PROT_WRITE : PROT_READ;
  void* const address = ::mmap(nullptr, file->size_, protection, MAP_PRIVATE, fd.get(), 0);
  LCTRAIN_CHECK(address != MAP_FAILED, "cannot map {} bytes: {}", file->size_, errno_text());
  file->data_ = static_cast<unsigned char*>(address);
  if (pattern == Pattern::kRandom) ::madvise(address, file->size_, MADV_RANDOM);
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

void release_mapped_pages(const void* data, uint64_t size) {
  if (data == nullptr || size == 0) return;
  static const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(data) / page * page;
  const auto end = reinterpret_cast<uintptr_t>(data) + size;
  // Advice only: a failure leaves the pages mapped, which costs memory, not correctness.
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void MappedFile::release(uint64_t offset, uint64_t size) const {
  LCTRAIN_CHECK(offset <= size_ && size <= size_ - offset,
                "internal: releasing bytes [{}, {}) of a {}-byte mapping", offset, offset + size,
                size_);
  release_mapped_pages(data_ + offset, size);
}

unsigned char* MappedFile::writable_data() const {
  LCTRAIN_CHECK(access_ == Access::kCopyOnWrite, "internal: a read-only mapping is not writable");
  return data_;
}

}  // namespace lctrain
