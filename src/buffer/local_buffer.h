// The local media buffer (MEDIA_BUFFER_PATH): the only code that opens or
// deletes files in it. Every lookup is resolved by the kernel relative to one
// directory descriptor, so no job can make the worker read or delete a file
// outside the buffer, whatever its local_path says.
//
// The descriptor is taken at start-up and taken again whenever the path
// names another directory (the volume was re-created, or the directory moved
// away and made anew): before a file is reported missing, the path's
// device and inode are compared with the descriptor's (one stat), and a
// replaced directory is reopened and the lookup repeated. No restart needed.
//
// Whose fault a failure is: a buffer that is gone, read-only, failing (EIO,
// ESTALE) or out of descriptors (EMFILE, ENFILE) is an outage of the buffer
// (kOutage: the job is held, its retries untouched), never the job's.
//
// Path rules for Open():
//   - an absolute local_path must lie lexically under the buffer path (the
//     configured path or its canonical form); the prefix is stripped;
//   - a relative local_path is taken relative to the buffer;
//   - "." and empty components are ignored; any ".." component is refused
//     as outside the buffer (producers never write one, and refusing it
//     outright gives the same answer whichever directories exist);
//   - symbolic links are refused everywhere in the path, even one whose
//     target lies inside the buffer (RESOLVE_NO_SYMLINKS): producers write
//     plain files, and a link is the classic way to point a job elsewhere.
//
// Thread-safety: Open() and Remove() may be called from any number of
// threads at once; the current directory descriptor is swapped under a lock
// and kept alive by every lookup still using the previous one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "util/fd.h"
#include "util/mutex.h"

namespace media_sync::buffer {

// One regular file opened inside the buffer, read-only. Move-only: owns the
// descriptor. The size is the one fstat() reported at open time.
class LocalFile {
 public:
  LocalFile(LocalFile&&) noexcept = default;
  LocalFile& operator=(LocalFile&&) noexcept = default;

  // Read with pread(); the descriptor stays owned by this object.
  int fd() const { return fd_.get(); }
  uint64_t size() const { return size_; }
  dev_t device() const { return device_; }
  ino_t inode() const { return inode_; }
  // The local_path as the job gave it (for operator-facing messages).
  const std::string& path() const { return path_; }
  // Normalised path relative to the buffer directory ("a/b.jpg").
  const std::string& relative_path() const { return relative_path_; }

 private:
  friend class LocalBuffer;
  LocalFile(UniqueFd fd, uint64_t size, dev_t device, ino_t inode, std::string path,
            std::string relative_path)
      : fd_(std::move(fd)),
        size_(size),
        device_(device),
        inode_(inode),
        path_(std::move(path)),
        relative_path_(std::move(relative_path)) {}

  UniqueFd fd_;
  uint64_t size_ = 0;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  // st_ctim at open: any write, truncation or metadata change moves it on.
  timespec changed_at_{};
  std::string path_;
  std::string relative_path_;
};

class LocalBuffer {
 public:
  // How paths are resolved beneath the buffer directory.
  enum class Resolver {
    kAuto,     // openat2() when the kernel has it, else the walk
    kOpenat2,  // openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    kWalk,     // component by component with O_NOFOLLOW, ".." refused (pre-5.6 kernels)
  };

  // Opens buffer_path (O_PATH | O_DIRECTORY). A relative buffer_path is
  // made absolute against the current directory. kConfiguration when it is
  // missing or not a directory, or when kOpenat2 is forced on a kernel
  // without it.
  static Result<LocalBuffer> Create(const std::string& buffer_path,
                                    Resolver resolver = Resolver::kAuto);

  LocalBuffer(LocalBuffer&&) noexcept = default;
  LocalBuffer& operator=(LocalBuffer&&) noexcept = default;

  // Opens local_path read-only without ever blocking (O_NONBLOCK, so a FIFO
  // without a writer opens at once and is then refused).
  //   ok(LocalFile)  a regular file inside the buffer
  //   ok(nullopt)    no such file (ENOENT anywhere on the path) in the
  //                  directory the buffer path names now
  //   kJobPermanent  "Path outside media buffer: <path>" (absolute path
  //                  elsewhere, any ".." component, any symlink on the path);
  //                  also an empty path or one with a NUL byte
  //   kOutage        "Media buffer unavailable: ..." the buffer directory is
  //                  gone or not a directory, the file lies on a read-only
  //                  mount (it could not be deleted once synced), or the
  //                  open failed with EROFS, EIO, ESTALE, EMFILE, ENFILE,
  //                  ENOMEM or ENOTCONN
  //   kJobRetryable  "Not a regular file: <path>" (directory, FIFO, device,
  //                  socket), or another I/O error with its strerror text
  Result<std::optional<LocalFile>> Open(std::string_view local_path) const;

  // Deletes the file's name from the buffer if it still refers to the very
  // file that was opened (same device and inode) and that file is unchanged
  // since (same size and ctime, so no byte the caller did not read is lost);
  // otherwise the name is kept: kJobRetryable "Local file changed during
  // sync: <path>". A ctime that moved on alone does not prove new bytes: a
  // chmod, or a hard link to the same inode made or removed (enqueue places
  // files by hard link, and their originals live on), moves it too. Given
  // `sha256` (the job's), such a file is hashed again through its open
  // descriptor and deleted when its bytes still hash to it and did not
  // change while they were read. A name already gone is Ok (idempotent), once the buffer
  // path is known to still name the directory looked in: in a replaced
  // buffer the name is looked up afresh. Failures of the
  // buffer (the errnos listed at Open) are kOutage "Media buffer unavailable:
  // ..."; others kJobRetryable with the strerror text. The parent directory
  // is resolved with the same rules as Open(). (Between the identity check
  // and unlinkat() a concurrent rename could still swap the name; POSIX offers no
  // unlink-by-descriptor. Producers never rewrite a queued file in place.)
  Status Remove(const LocalFile& file, std::string_view sha256 = {}) const;

  // The absolute buffer path as configured.
  const std::string& path() const { return path_; }
  // The resolver in use (kAuto resolved to kOpenat2 or kWalk).
  Resolver resolver() const { return resolver_; }

 private:
  // One opening of the buffer directory, with its identity.
  struct Directory {
    UniqueFd fd;
    dev_t device = 0;
    ino_t inode = 0;
  };
  struct Current {
    Mutex mutex;
    std::shared_ptr<const Directory> directory GUARDED_BY(mutex);
  };

  LocalBuffer(std::shared_ptr<const Directory> dir, std::string path,
              std::vector<std::string> path_components,
              std::vector<std::string> canonical_components, Resolver resolver)
      : current_(std::make_unique<Current>()),
        path_(std::move(path)),
        path_components_(std::move(path_components)),
        canonical_components_(std::move(canonical_components)),
        resolver_(resolver) {
    current_->directory = std::move(dir);
  }

  std::shared_ptr<const Directory> CurrentDirectory() const;
  // The directory the buffer path names now: `seen` when it is still the
  // same, a fresh opening when it was replaced; kOutage when the path names
  // no directory (or cannot be checked).
  Result<std::shared_ptr<const Directory>> Recheck(
      const std::shared_ptr<const Directory>& seen) const;
  // local_path → normalised path relative to the buffer, or nullopt when an
  // absolute path lies elsewhere or any component is "..".
  std::optional<std::string> RelativeToBuffer(std::string_view local_path) const;
  // Remove() within one opening of the directory; nullopt when the name (or
  // its parent) is not there.
  std::optional<Status> RemoveBeneath(const Directory& dir, const LocalFile& file,
                                      std::string_view sha256) const;
  // openat() of a path beneath dir_fd with the configured resolver;
  // returns the descriptor or -errno (EXDEV/ELOOP for escapes and symlinks).
  int OpenBeneath(int dir_fd, const std::string& relative_path, int flags) const;
  int WalkBeneath(int dir_fd, const std::string& relative_path, int flags) const;

  std::unique_ptr<Current> current_;
  std::string path_;
  std::vector<std::string> path_components_;
  std::vector<std::string> canonical_components_;
  Resolver resolver_ = Resolver::kAuto;
};

}  // namespace media_sync::buffer
