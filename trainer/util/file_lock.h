// FileLock: an advisory lock (flock) on a file that names its holder (host and pid), held for the
// object's life. The kernel drops it when the holder dies, so a lock left by a killed process is
// free again; its file still names the dead holder, which the next owner reports.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace lctrain {

class FileLock {
 public:
  // Takes the lock or returns nullopt with `holder` set to the file's text (who holds it).
  static std::optional<FileLock> try_acquire(const std::filesystem::path& path,
                                             std::string& holder);
  ~FileLock();
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  // What the file said before this process took the lock: a previous holder that died ("" when
  // the file was new or released cleanly).
  const std::string& previous_holder() const { return previous_holder_; }

 private:
  FileLock(std::filesystem::path path, int fd, std::string previous_holder);
  void release() noexcept;
  std::filesystem::path path_;
  int fd_ = -1;
  std::string previous_holder_;
};

// "host pid 1234" for this process.
std::string this_process_description();

}  // namespace lctrain
