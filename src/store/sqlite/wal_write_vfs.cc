#include "store/sqlite/wal_write_vfs.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "store/sqlite/sqlite_connection.h"

namespace noema::sqlite {
namespace {

constexpr const char* kVfsName = "noema-wal";

sqlite3_vfs* root_vfs = nullptr;  // the default VFS, set once by WalWriteVfsName

// The handle SQLite allocates for us (szOsFile bytes): ours, then the default VFS's.
struct WalFile {
  sqlite3_file base;   // base.pMethods == &kMethods
  sqlite3_file* real;  // the default VFS's handle, in the same allocation
  bool gather;         // a WAL file: writes are gathered
  unsigned char* buffer;
  size_t used;
  sqlite3_int64 offset;  // of buffer[0] in the file
  // Set around a commit by SetWalSyncDeferred: xSync writes the buffer to the OS but does
  // not fsync; the caller makes the file durable itself before it acknowledges.
  bool defer_sync;
  // The WAL header (offset 0) was written since the last sync: SQLite writes it when it
  // restarts the WAL, with new salts, and syncs it before any new frame can reach the disk
  // over the old ones; that sync is never deferred.
  bool header_written;
  int sync_fd;  // a descriptor of our own of a WAL file, for WalSyncDescriptor; or -1
  int64_t deferred_syncs;
  int64_t syncs;
};

constexpr size_t kRealOffset = (sizeof(WalFile) + 15) & ~size_t{15};

WalFile* Self(sqlite3_file* file) { return reinterpret_cast<WalFile*>(file); }
sqlite3_file* Real(sqlite3_file* file) { return Self(file)->real; }

// The most the default VFS writes in one call: unix's xWrite masks a write's length to
// 17 bits (it never expects more than a 64 KiB page and its frame header), so larger
// writes go down in pieces of this size.
constexpr size_t kWriteChunkBytes = size_t{64} << 10;

// Writes what is gathered; the buffer is empty afterwards whatever the outcome.
int Flush(WalFile* file) {
  int rc = SQLITE_OK;
  for (size_t done = 0; done < file->used && rc == SQLITE_OK; done += kWriteChunkBytes) {
    const size_t piece = std::min(kWriteChunkBytes, file->used - done);
    rc = file->real->pMethods->xWrite(file->real, file->buffer + done, static_cast<int>(piece),
                                      file->offset + static_cast<sqlite3_int64>(done));
  }
  file->used = 0;
  return rc;
}

int Close(sqlite3_file* handle) {
  WalFile* file = Self(handle);
  int flushed = Flush(file);
  int rc = file->real->pMethods->xClose(file->real);
  if (file->sync_fd >= 0) ::close(file->sync_fd);
  file->sync_fd = -1;
  std::free(file->buffer);
  file->buffer = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

int Read(sqlite3_file* handle, void* data, int amount, sqlite3_int64 offset) {
  WalFile* file = Self(handle);
  if (int rc = Flush(file); rc != SQLITE_OK) return rc;
  return file->real->pMethods->xRead(file->real, data, amount, offset);
}

int Write(sqlite3_file* handle, const void* data, int amount, sqlite3_int64 offset) {
  WalFile* file = Self(handle);
  if (!file->gather) return file->real->pMethods->xWrite(file->real, data, amount, offset);
  if (offset == 0) file->header_written = true;
  const auto size = static_cast<size_t>(amount);
  if (file->used > 0 && offset == file->offset + static_cast<sqlite3_int64>(file->used) &&
      file->used + size <= kWalWriteBufferBytes) {
    std::memcpy(file->buffer + file->used, data, size);
    file->used += size;
    return SQLITE_OK;
  }
  if (int rc = Flush(file); rc != SQLITE_OK) return rc;
  if (size > kWriteChunkBytes) {
    return file->real->pMethods->xWrite(file->real, data, amount, offset);
  }
  if (file->buffer == nullptr) {
    file->buffer = static_cast<unsigned char*>(std::malloc(kWalWriteBufferBytes));
    if (file->buffer == nullptr)
      return file->real->pMethods->xWrite(file->real, data, amount, offset);
  }
  std::memcpy(file->buffer, data, size);
  file->used = size;
  file->offset = offset;
  return SQLITE_OK;
}

int Truncate(sqlite3_file* handle, sqlite3_int64 size) {
  WalFile* file = Self(handle);
  if (int rc = Flush(file); rc != SQLITE_OK) return rc;
  return file->real->pMethods->xTruncate(file->real, size);
}

int Sync(sqlite3_file* handle, int flags) {
  WalFile* file = Self(handle);
  if (int rc = Flush(file); rc != SQLITE_OK) return rc;
  if (file->defer_sync && !file->header_written) {  // only WAL files are ever deferred
    ++file->deferred_syncs;
    return SQLITE_OK;
  }
  file->header_written = false;
  ++file->syncs;
  return file->real->pMethods->xSync(file->real, flags);
}

int FileSize(sqlite3_file* handle, sqlite3_int64* size) {
  WalFile* file = Self(handle);
  if (int rc = Flush(file); rc != SQLITE_OK) return rc;
  return file->real->pMethods->xFileSize(file->real, size);
}

int FileControl(sqlite3_file* handle, int op, void* arg) {
  WalFile* file = Self(handle);
  if (int rc = Flush(file); rc != SQLITE_OK) return rc;
  return file->real->pMethods->xFileControl(file->real, op, arg);
}

int Lock(sqlite3_file* handle, int level) {
  return Real(handle)->pMethods->xLock(Real(handle), level);
}
int Unlock(sqlite3_file* handle, int level) {
  return Real(handle)->pMethods->xUnlock(Real(handle), level);
}
int CheckReservedLock(sqlite3_file* handle, int* out) {
  return Real(handle)->pMethods->xCheckReservedLock(Real(handle), out);
}
int SectorSize(sqlite3_file* handle) { return Real(handle)->pMethods->xSectorSize(Real(handle)); }
int DeviceCharacteristics(sqlite3_file* handle) {
  return Real(handle)->pMethods->xDeviceCharacteristics(Real(handle));
}
int ShmMap(sqlite3_file* handle, int region, int size, int extend, void volatile** out) {
  return Real(handle)->pMethods->xShmMap(Real(handle), region, size, extend, out);
}
int ShmLock(sqlite3_file* handle, int offset, int n, int flags) {
  return Real(handle)->pMethods->xShmLock(Real(handle), offset, n, flags);
}
void ShmBarrier(sqlite3_file* handle) { Real(handle)->pMethods->xShmBarrier(Real(handle)); }
int ShmUnmap(sqlite3_file* handle, int delete_flag) {
  return Real(handle)->pMethods->xShmUnmap(Real(handle), delete_flag);
}
int Fetch(sqlite3_file* handle, sqlite3_int64 offset, int amount, void** out) {
  WalFile* file = Self(handle);
  if (int rc = Flush(file); rc != SQLITE_OK) return rc;
  return file->real->pMethods->xFetch(file->real, offset, amount, out);
}
int Unfetch(sqlite3_file* handle, sqlite3_int64 offset, void* page) {
  return Real(handle)->pMethods->xUnfetch(Real(handle), offset, page);
}

// Version 3, as the default unix VFS's (Open refuses a default VFS with fewer methods).
const sqlite3_io_methods kMethods = {
    3,
    Close,
    Read,
    Write,
    Truncate,
    Sync,
    FileSize,
    Lock,
    Unlock,
    CheckReservedLock,
    FileControl,
    SectorSize,
    DeviceCharacteristics,
    ShmMap,
    ShmLock,
    ShmBarrier,
    ShmUnmap,
    Fetch,
    Unfetch,
};

int Open(sqlite3_vfs* /*vfs*/, const char* name, sqlite3_file* handle, int flags, int* out_flags) {
  WalFile* file = Self(handle);
  file->base.pMethods = nullptr;
  file->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(handle) + kRealOffset);
  file->gather = (flags & SQLITE_OPEN_WAL) != 0;
  file->buffer = nullptr;
  file->used = 0;
  file->offset = 0;
  file->defer_sync = false;
  file->header_written = false;
  file->sync_fd = -1;
  file->deferred_syncs = 0;
  file->syncs = 0;
  int rc = root_vfs->xOpen(root_vfs, name, file->real, flags, out_flags);
  if (file->real->pMethods == nullptr) return rc;
  if (file->real->pMethods->iVersion < 3) {
    // kMethods forwards the version-3 methods (shared memory, memory maps); a default VFS
    // without them is not the unix VFS this was written against: refuse the file rather
    // than forward to methods it lacks.
    file->real->pMethods->xClose(file->real);
    return SQLITE_CANTOPEN;
  }
  file->base.pMethods = &kMethods;
  if (file->gather && name != nullptr) {
    // Read-only suffices for fdatasync on Linux. SQLite holds no POSIX locks on a WAL
    // file (its locks are on the database and its -shm file), so closing this descriptor
    // releases none of them.
    file->sync_fd = ::open(name, O_RDONLY | O_CLOEXEC);
  }
  return rc;
}

// The VFS methods other than xOpen are the default VFS's own.
int Delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return root_vfs->xDelete(root_vfs, name, sync_dir);
}
int Access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return root_vfs->xAccess(root_vfs, name, flags, out);
}
int FullPathname(sqlite3_vfs*, const char* name, int size, char* out) {
  return root_vfs->xFullPathname(root_vfs, name, size, out);
}
void* DlOpen(sqlite3_vfs*, const char* name) { return root_vfs->xDlOpen(root_vfs, name); }
void DlError(sqlite3_vfs*, int size, char* out) { root_vfs->xDlError(root_vfs, size, out); }
void (*DlSym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return root_vfs->xDlSym(root_vfs, handle, symbol);
}
void DlClose(sqlite3_vfs*, void* handle) { root_vfs->xDlClose(root_vfs, handle); }
int Randomness(sqlite3_vfs*, int size, char* out) {
  return root_vfs->xRandomness(root_vfs, size, out);
}
int Sleep(sqlite3_vfs*, int micros) { return root_vfs->xSleep(root_vfs, micros); }
int CurrentTime(sqlite3_vfs*, double* out) { return root_vfs->xCurrentTime(root_vfs, out); }
int GetLastError(sqlite3_vfs*, int size, char* out) {
  return root_vfs->xGetLastError(root_vfs, size, out);
}
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
  return root_vfs->xCurrentTimeInt64(root_vfs, out);
}

sqlite3_vfs vfs;

// The WAL file `db` has open through this VFS, or nullptr.
WalFile* WalFileOf(sqlite3* db) {
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &file) != SQLITE_OK ||
      file == nullptr || file->pMethods != &kMethods) {
    return nullptr;
  }
  WalFile* wal = Self(file);
  return wal->gather ? wal : nullptr;
}

}  // namespace

bool SetWalSyncDeferred(sqlite3* db, bool deferred) {
  WalFile* wal = WalFileOf(db);
  if (wal == nullptr || (deferred && wal->sync_fd < 0)) return false;
  bool previous = wal->defer_sync;
  wal->defer_sync = deferred;
  return previous;
}

int WalSyncDescriptor(sqlite3* db) {
  WalFile* wal = WalFileOf(db);
  return wal == nullptr ? -1 : wal->sync_fd;
}

WalSyncCounts WalSyncCountsOf(sqlite3* db) {
  WalFile* wal = WalFileOf(db);
  if (wal == nullptr) return {};
  return {wal->syncs, wal->deferred_syncs};
}

const char* WalWriteVfsName() {
  static std::once_flag once;
  static bool registered = false;
  std::call_once(once, [] {
    ConfigureSqliteOnce();  // before sqlite3_vfs_find initialises SQLite
    root_vfs = sqlite3_vfs_find(nullptr);
    if (root_vfs == nullptr || root_vfs->iVersion < 2) return;
    vfs = sqlite3_vfs{};
    vfs.iVersion = 2;
    vfs.szOsFile = static_cast<int>(kRealOffset) + root_vfs->szOsFile;
    vfs.mxPathname = root_vfs->mxPathname;
    vfs.zName = kVfsName;
    vfs.xOpen = Open;
    vfs.xDelete = Delete;
    vfs.xAccess = Access;
    vfs.xFullPathname = FullPathname;
    vfs.xDlOpen = DlOpen;
    vfs.xDlError = DlError;
    vfs.xDlSym = DlSym;
    vfs.xDlClose = DlClose;
    vfs.xRandomness = Randomness;
    vfs.xSleep = Sleep;
    vfs.xCurrentTime = CurrentTime;
    vfs.xGetLastError = GetLastError;
    vfs.xCurrentTimeInt64 = CurrentTimeInt64;
    registered = sqlite3_vfs_register(&vfs, /*makeDflt=*/0) == SQLITE_OK;
  });
  return registered ? kVfsName : nullptr;
}

}  // namespace noema::sqlite
