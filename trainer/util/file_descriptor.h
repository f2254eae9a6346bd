// A POSIX file descriptor closed when it goes out of scope, and errno as text: what the mmap
// wrapper, the safetensors writer and the launcher's pipes share.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace lctrain {

class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() { reset(); }
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.release()) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership: the caller closes it.
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// The text of an errno value; the default reads errno at the call, so call it right after the
// failing call (or pass a saved value).
inline std::string errno_text(int error = errno) { return std::strerror(error); }

}  // namespace lctrain
