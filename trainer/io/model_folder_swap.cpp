#include "io/model_folder_swap.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "util/error.h"
#include "util/file_descriptor.h"

namespace lctrain::io {
namespace fs = std::filesystem;
namespace {

// The files of a model that a new save replaces: config, weights of every layout we read.
bool is_model_file(const std::string& name) {
  const auto starts = [&](const char* prefix) { return name.rfind(prefix, 0) == 0; };
  return name == "config.json" || name == "params.json" || starts("model.safetensors") ||
         (starts("model-") && fs::path(name).extension() == ".safetensors") ||
         starts("pytorch_model") || starts("consolidated.");
}

void check_replaceable(const fs::path& out) {
  std::error_code error;
  const fs::file_status status = fs::symlink_status(out, error);
  if (!fs::exists(status)) return;
  LCTRAIN_CHECK(fs::is_directory(status), "{} exists and is not a folder; refusing to replace it",
                out.string());
}

// Everything else the old folder holds (tokenizer files, a README, subfolders) goes into the new
// one as hard links, where the new one has nothing of that name: only the model is replaced.
// Linked after the new files are written, so nothing written can reach the old folder's files.
void carry_over(const fs::path& from, const fs::path& to, bool top) {
  for (const auto& entry : fs::directory_iterator(from)) {
    const fs::path target = to / entry.path().filename();
    if (fs::exists(fs::symlink_status(target))) continue;
    if (top && is_model_file(entry.path().filename().string())) continue;
    if (entry.is_symlink()) {
      fs::copy_symlink(entry.path(), target);
    } else if (entry.is_directory()) {
      fs::create_directory(target);
      carry_over(entry.path(), target, false);
    } else {
      std::error_code error;
      fs::create_hard_link(entry.path(), target, error);
      if (error) fs::copy_file(entry.path(), target);
    }
  }
}

// Makes the renames in `dir` durable; failure loses no data, so it is not fatal.
void sync_folder(const fs::path& dir) {
  const FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() >= 0) ::fsync(fd.get());
}

void rename_or_throw(const fs::path& from, const fs::path& to) {
  LCTRAIN_CHECK(::rename(from.c_str(), to.c_str()) == 0, "cannot rename {} to {}: {}",
                from.string(), to.string(), errno_text());
}

// Puts `staging` in place of `out`. With RENAME_EXCHANGE the two trade places in one step; where
// the file system lacks it, the old folder is renamed aside first (and put back if the second
// rename fails). The old folder is deleted only once the new one is in place.
void swap_in(const fs::path& staging, const fs::path& out, const fs::path& aside) {
  if (!fs::exists(fs::symlink_status(out))) {
    rename_or_throw(staging, out);
    return;
  }
#ifdef RENAME_EXCHANGE
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, out.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(staging);  // now the old folder
    return;
  }
#endif
  rename_or_throw(out, aside);
  if (::rename(staging.c_str(), out.c_str()) != 0) {
    const std::string reason = errno_text();
    ::rename(aside.c_str(), out.c_str());
    throw Error("cannot rename {} to {}: {}", staging.string(), out.string(), reason);
  }
  fs::remove_all(aside);
}

}  // namespace

void write_model_folder(const fs::path& out_path,
                        const std::function<void(const fs::path& staging)>& write) {
  fs::path target = fs::absolute(out_path).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();  // "a/b/" names the folder b
  LCTRAIN_CHECK(!target.filename().empty() && target.filename() != "..",
                "cannot write a model folder at {}", out_path.string());
  check_replaceable(target);
  const fs::path parent = target.parent_path();
  fs::create_directories(parent);
  const std::string name = target.filename().string();
  const std::string pid = std::to_string(::getpid());
  const fs::path staging = parent / ("." + name + ".partial-" + pid);
  const fs::path aside = parent / ("." + name + ".old-" + pid);
  fs::remove_all(staging);
  fs::create_directory(staging);
  try {
    write(staging);
    if (fs::exists(target)) carry_over(target, staging, true);
    sync_folder(staging);
    swap_in(staging, target, aside);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    throw;
  }
  sync_folder(parent);
}

}  // namespace lctrain::io
