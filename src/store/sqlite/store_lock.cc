#include "store/sqlite/store_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

namespace noema::sqlite {
namespace {

// realpath(3), or nullopt when `path` cannot be resolved (it does not exist).
std::optional<std::string> RealPath(const std::string& path) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) return std::nullopt;
  return std::string(resolved);
}

}  // namespace

std::string StoreLock::ResolvedPath(const std::string& database_path) {
  if (std::optional<std::string> file = RealPath(database_path)) return *file;
  // Not created yet: its directory resolved, plus its name.
  std::filesystem::path typed(database_path);
  std::string parent = typed.parent_path().string();
  if (std::optional<std::string> dir = RealPath(parent.empty() ? "." : parent)) {
    return (std::filesystem::path(*dir) / typed.filename()).string();
  }
  return database_path;
}

Result<StoreLock> StoreLock::Acquire(const std::string& database_path, Mode mode) {
  // Named from the file's resolved path, so that every name of the store that resolves
  // to one file (a symlink, `dir/../x.db`, a relative path) takes the same lock.
  const std::string path = ResolvedPath(database_path) + ".lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::Unavailable("cannot open '" + path + "': " + std::strerror(errno));
  }
  const int operation = (mode == Mode::kShared ? LOCK_SH : LOCK_EX) | LOCK_NB;
  int rc = 0;
  do {
    rc = ::flock(fd, operation);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int error = errno;
    ::close(fd);
    if (error != EWOULDBLOCK) {
      return Status::Unavailable("cannot lock '" + path + "': " + std::strerror(error));
    }
    if (mode == Mode::kShared) {
      return Status::Unavailable("a restore of the store '" + database_path +
                                 "' is running; try again when it has finished");
    }
    return Status::FailedPrecondition(
        "the store '" + database_path +
        "' is open in another process (a running `noema serve`?); stop it, then restore");
  }
  return StoreLock(fd);
}

StoreLock::StoreLock(StoreLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

StoreLock& StoreLock::operator=(StoreLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

StoreLock::~StoreLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace noema::sqlite
