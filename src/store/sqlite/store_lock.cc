#include "store/sqlite/store_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace noema::sqlite {

Result<StoreLock> StoreLock::Acquire(const std::string& database_path, Mode mode) {
  const std::string path = database_path + ".lock";
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
