#include "util/file_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace lctrain {
namespace {

std::string read_all(int fd) {
  std::string text;
  char buffer[512];
  if (::lseek(fd, 0, SEEK_SET) < 0) return text;
  for (ssize_t got; (got = ::read(fd, buffer, sizeof buffer)) > 0;) text.append(buffer, got);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

std::string this_process_description() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "unknown-host");
  return fmt::format("{} pid {}", host, ::getpid());
}

std::optional<FileLock> FileLock::try_acquire(const std::filesystem::path& path,
                                              std::string& holder) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  LCTRAIN_CHECK(fd >= 0, "cannot open lock file {}: {}", path.string(), std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    holder = read_all(fd);
    ::close(fd);
    LCTRAIN_CHECK(error == EWOULDBLOCK, "cannot lock {}: {}", path.string(), std::strerror(error));
    return std::nullopt;
  }
  std::string previous = read_all(fd);
  const std::string me = this_process_description() + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) < 0) {
    const int error = errno;
    ::close(fd);
    throw Error("cannot write lock file {}: {}", path.string(), std::strerror(error));
  }
  return FileLock(path, fd, std::move(previous));
}

FileLock::FileLock(std::filesystem::path path, int fd, std::string previous_holder)
    : path_(std::move(path)), fd_(fd), previous_holder_(std::move(previous_holder)) {}

FileLock::FileLock(FileLock&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(other.fd_),
      previous_holder_(std::move(other.previous_holder_)) {
  other.fd_ = -1;
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this == &other) return *this;
  release();
  path_ = std::move(other.path_);
  fd_ = other.fd_;
  previous_holder_ = std::move(other.previous_holder_);
  other.fd_ = -1;
  return *this;
}

FileLock::~FileLock() { release(); }

void FileLock::release() noexcept {
  if (fd_ < 0) return;
  // Emptied while still held: an empty file means "released cleanly" to the next owner.
  if (::ftruncate(fd_, 0) != 0) { /* the lock goes anyway; the text only informs */
  }
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
  fd_ = -1;
}

}  // namespace lctrain
