#include "buffer/local_buffer.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/hash.h"

namespace media_sync::buffer {
namespace {

// The file behind `file`'s descriptor still hashes to sha256, and neither
// its size nor its ctime moved from `seen` while it was read.
bool SameBytes(const LocalFile& file, std::string_view sha256, const struct stat& seen) {
  auto hashed = Sha256OfFd(file.fd(), file.size());
  if (!hashed.ok() || *hashed != sha256) return false;
  struct stat after {};
  return ::fstat(file.fd(), &after) == 0 && after.st_size == seen.st_size &&
         after.st_ctim.tv_sec == seen.st_ctim.tv_sec &&
         after.st_ctim.tv_nsec == seen.st_ctim.tv_nsec;
}

constexpr int kReadOnlyNonBlocking = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
constexpr int kDirectoryPath = O_PATH | O_DIRECTORY | O_CLOEXEC;
constexpr uint64_t kBeneathNoLinks = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
// openat2() returns EAGAIN when a concurrent rename or mount raced with a
// RESOLVE_BENEATH lookup; the lookup is simply tried again.
constexpr int kOpenat2RaceRetries = 16;

std::string ErrnoText(int error) { return std::strerror(error); }

// Splits on '/', dropping empty and "." components; ".." is kept as is.
std::vector<std::string> SplitComponents(std::string_view path) {
  std::vector<std::string> components;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view component = path.substr(start, end - start);
    if (!component.empty() && component != ".") components.emplace_back(component);
    start = end + 1;
  }
  return components;
}

std::string JoinComponents(const std::vector<std::string>& components, size_t first) {
  std::string joined;
  for (size_t i = first; i < components.size(); ++i) {
    if (!joined.empty()) joined += '/';
    joined += components[i];
  }
  return joined.empty() ? std::string(".") : joined;
}

bool HasPrefix(const std::vector<std::string>& components, const std::vector<std::string>& prefix) {
  if (prefix.size() > components.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (components[i] != prefix[i]) return false;
  }
  return true;
}

int Openat2(int dir_fd, const std::string& path, int flags, uint64_t resolve) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = resolve;
  for (int attempt = 0;; ++attempt) {
    long fd = ::syscall(SYS_openat2, dir_fd, path.c_str(), &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    int error = errno;
    if (error == EINTR || (error == EAGAIN && attempt < kOpenat2RaceRetries)) continue;
    return -error;
  }
}

// After a failed O_NOFOLLOW open of name: is name a symbolic link? (Linux
// reports ELOOP for a link leaf, but ENOTDIR when O_DIRECTORY was asked too.)
bool IsSymlink(int dir_fd, const std::string& name) {
  struct stat st {};
  return ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

Error OutsideBuffer(std::string_view local_path) {
  return Error::JobPermanent("Path outside media buffer: " + std::string(local_path))
      .As(FaultClass::kOutsideBuffer);
}

Error NotRegularFile(std::string_view local_path) {
  return Error::JobRetryable("Not a regular file: " + std::string(local_path))
      .As(FaultClass::kNotRegularFile);
}

// Failures of the buffer as a whole (its file system, its device, this
// process's descriptors), which every job would meet alike.
bool IsBufferFailure(int error) {
  switch (error) {
    case EROFS:
    case EIO:
    case ESTALE:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case ENOTCONN:  // a FUSE mount whose daemon is gone
      return true;
    default:
      return false;
  }
}

Error BufferUnavailable(const std::string& what, int error) {
  return Error::Outage("Media buffer unavailable: " + what + ": " + ErrnoText(error));
}

// `what` failed with `error`: the buffer's outage or the job's fault.
Error LocalFailure(const std::string& what, int error) {
  if (IsBufferFailure(error)) return BufferUnavailable(what, error);
  return Error::JobRetryable(what + ": " + ErrnoText(error)).As(FaultClass::kLocalIo);
}

}  // namespace

Result<LocalBuffer> LocalBuffer::Create(const std::string& buffer_path, Resolver resolver) {
  if (buffer_path.empty()) return Error::Configuration("MEDIA_BUFFER_PATH is empty");
  if (buffer_path.find('\0') != std::string::npos) {
    return Error::Configuration("MEDIA_BUFFER_PATH contains a NUL byte");
  }
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(buffer_path, ec);
  if (ec) {
    return Error::Configuration("MEDIA_BUFFER_PATH cannot be made absolute: " + buffer_path + ": " +
                                ec.message());
  }
  std::string path = absolute.string();

  UniqueFd dir(::open(path.c_str(), kDirectoryPath));
  if (!dir) {
    int error = errno;
    if (error == ENOTDIR) {
      return Error::Configuration("MEDIA_BUFFER_PATH is not a directory: " + path);
    }
    return Error::Configuration("MEDIA_BUFFER_PATH cannot be opened: " + path + ": " +
                                ErrnoText(error));
  }
  struct stat dir_stat {};
  if (::fstat(dir.get(), &dir_stat) != 0) {
    return Error::Configuration("MEDIA_BUFFER_PATH cannot be examined: " + path + ": " +
                                ErrnoText(errno));
  }

  std::vector<std::string> components = SplitComponents(path);
  std::vector<std::string> canonical = components;
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
  if (real) canonical = SplitComponents(real.get());

  if (resolver != Resolver::kWalk) {
    int probe = Openat2(dir.get(), ".", kDirectoryPath, kBeneathNoLinks);
    if (probe >= 0) {
      ::close(probe);
      resolver = Resolver::kOpenat2;
    } else if (resolver == Resolver::kOpenat2) {
      return Error::Configuration("openat2() is unavailable on this kernel: " + ErrnoText(-probe));
    } else {
      // ENOSYS on pre-5.6 kernels, EPERM under older seccomp profiles.
      resolver = Resolver::kWalk;
    }
  }
  auto directory = std::make_shared<Directory>();
  directory->fd = std::move(dir);
  directory->device = dir_stat.st_dev;
  directory->inode = dir_stat.st_ino;
  return LocalBuffer(std::move(directory), std::move(path), std::move(components),
                     std::move(canonical), resolver);
}

std::shared_ptr<const LocalBuffer::Directory> LocalBuffer::CurrentDirectory() const {
  MutexLock lock(current_->mutex);
  return current_->directory;
}

Result<std::shared_ptr<const LocalBuffer::Directory>> LocalBuffer::Recheck(
    const std::shared_ptr<const Directory>& seen) const {
  struct stat named {};
  if (::stat(path_.c_str(), &named) != 0) {
    return BufferUnavailable("cannot find the buffer directory " + path_, errno);
  }
  if (!S_ISDIR(named.st_mode)) {
    return Error::Outage("Media buffer unavailable: " + path_ + " is not a directory");
  }
  if (named.st_dev == seen->device && named.st_ino == seen->inode) return seen;

  // Replaced under the path: open what the path names now.
  UniqueFd fd(::open(path_.c_str(), kDirectoryPath));
  if (!fd) return BufferUnavailable("cannot open the buffer directory " + path_, errno);
  struct stat opened {};
  if (::fstat(fd.get(), &opened) != 0) {
    return BufferUnavailable("cannot examine the buffer directory " + path_, errno);
  }
  auto fresh = std::make_shared<Directory>();
  fresh->fd = std::move(fd);
  fresh->device = opened.st_dev;
  fresh->inode = opened.st_ino;

  MutexLock lock(current_->mutex);
  // Another thread may have reopened it first: keep one current opening.
  if (current_->directory->device == fresh->device && current_->directory->inode == fresh->inode) {
    return current_->directory;
  }
  spdlog::warn("media buffer {} was replaced (device {} inode {} -> device {} inode {}): reopened",
               path_, static_cast<uint64_t>(current_->directory->device),
               static_cast<uint64_t>(current_->directory->inode),
               static_cast<uint64_t>(fresh->device), static_cast<uint64_t>(fresh->inode));
  current_->directory = fresh;
  return std::shared_ptr<const Directory>(std::move(fresh));
}

std::optional<std::string> LocalBuffer::RelativeToBuffer(std::string_view local_path) const {
  std::vector<std::string> components = SplitComponents(local_path);
  // No ".." at all, escaping or not: the answer must not depend on which
  // directories happen to exist, nor on the resolver in use.
  for (const std::string& component : components) {
    if (component == "..") return std::nullopt;
  }
  if (!local_path.starts_with('/')) return JoinComponents(components, 0);
  if (HasPrefix(components, path_components_)) {
    return JoinComponents(components, path_components_.size());
  }
  if (HasPrefix(components, canonical_components_)) {
    return JoinComponents(components, canonical_components_.size());
  }
  return std::nullopt;
}

int LocalBuffer::OpenBeneath(int dir_fd, const std::string& relative_path, int flags) const {
  if (resolver_ == Resolver::kOpenat2) {
    return Openat2(dir_fd, relative_path, flags, kBeneathNoLinks);
  }
  return WalkBeneath(dir_fd, relative_path, flags);
}

int LocalBuffer::WalkBeneath(int dir_fd, const std::string& relative_path, int flags) const {
  std::vector<std::string> components = SplitComponents(relative_path);
  for (const std::string& component : components) {
    // RelativeToBuffer() already refused "..": this walk stays beneath even
    // if a caller forgets.
    if (component == "..") return -EXDEV;
  }
  if (components.empty()) components.emplace_back(".");

  UniqueFd current_dir;  // empty while at the buffer directory itself
  auto at = [&] { return current_dir ? current_dir.get() : dir_fd; };
  auto open_component = [&](const std::string& name, int component_flags) {
    int fd;
    do {
      fd = ::openat(at(), name.c_str(), component_flags | O_NOFOLLOW);
    } while (fd < 0 && errno == EINTR);
    if (fd >= 0) return fd;
    int error = errno;
    if ((error == ENOTDIR || error == ELOOP) && IsSymlink(at(), name)) return -ELOOP;
    return -error;
  };

  for (size_t i = 0; i + 1 < components.size(); ++i) {
    int fd = open_component(components[i], kDirectoryPath);
    if (fd < 0) return fd;
    current_dir.reset(fd);
  }
  return open_component(components.back(), flags);
}

Result<std::optional<LocalFile>> LocalBuffer::Open(std::string_view local_path) const {
  if (local_path.empty()) {
    return Error::JobPermanent("Invalid local path: empty").As(FaultClass::kInvalidJob);
  }
  if (local_path.find('\0') != std::string_view::npos) {
    return Error::JobPermanent("Invalid local path: contains a NUL byte")
        .As(FaultClass::kInvalidJob);
  }
  std::optional<std::string> relative_path = RelativeToBuffer(local_path);
  if (!relative_path) return OutsideBuffer(local_path);

  std::shared_ptr<const Directory> dir = CurrentDirectory();
  int fd = OpenBeneath(dir->fd.get(), *relative_path, kReadOnlyNonBlocking);
  if (fd == -ENOENT || fd == -ESTALE) {
    // Missing, or so it seems: only if the path still names the directory
    // we looked in (one stat). A replaced buffer is looked into afresh.
    auto now = Recheck(dir);
    if (!now) return now.error();
    if (*now != dir) fd = OpenBeneath((*now)->fd.get(), *relative_path, kReadOnlyNonBlocking);
  }
  if (fd < 0) {
    int error = -fd;
    switch (error) {
      case ENOENT:
        return std::optional<LocalFile>();
      case EXDEV:  // ".." or an absolute symlink climbing out
      case ELOOP:  // a symlink anywhere on the path
        return OutsideBuffer(local_path);
      case ENXIO:  // a UNIX socket
        return NotRegularFile(local_path);
      default:
        return LocalFailure("Cannot open " + std::string(local_path), error);
    }
  }
  UniqueFd file_fd(fd);
  struct stat st {};
  if (::fstat(file_fd.get(), &st) != 0) {
    return LocalFailure("Cannot stat " + std::string(local_path), errno);
  }
  if (!S_ISREG(st.st_mode)) return NotRegularFile(local_path);
  // Read fine, but its name could not be deleted once synced: held until the
  // buffer is writable again, rather than synced and left behind.
  struct statvfs fs {};
  if (::fstatvfs(file_fd.get(), &fs) == 0 && (fs.f_flag & ST_RDONLY) != 0) {
    return BufferUnavailable(path_ + " is mounted read-only, so a synced file could not be deleted",
                             EROFS);
  }
  // O_NONBLOCK has no effect on regular files; it only kept FIFOs from blocking.
  LocalFile file(std::move(file_fd), static_cast<uint64_t>(st.st_size), st.st_dev, st.st_ino,
                 std::string(local_path), std::move(*relative_path));
  file.changed_at_ = st.st_ctim;
  return std::optional<LocalFile>(std::move(file));
}

Status LocalBuffer::Remove(const LocalFile& file, std::string_view sha256) const {
  // The name as the buffer path resolves it now: a file left in a directory
  // that was moved away is outside the buffer.
  std::shared_ptr<const Directory> dir = CurrentDirectory();
  if (std::optional<Status> done = RemoveBeneath(*dir, file, sha256)) return *done;
  // Gone, or so it seems: only if the path still names the directory we
  // looked in (one stat). A replaced buffer (its files moved into the new
  // directory) is looked into afresh, or the file would be left there.
  auto now = Recheck(dir);
  if (!now) return now.error();
  if (*now == dir) return Ok();  // already gone: idempotent
  std::optional<Status> done = RemoveBeneath(**now, file, sha256);
  return done ? *done : Ok();
}

std::optional<Status> LocalBuffer::RemoveBeneath(const Directory& dir, const LocalFile& file,
                                                 std::string_view sha256) const {
  const std::string& relative_path = file.relative_path();
  size_t slash = relative_path.rfind('/');
  std::string leaf = slash == std::string::npos ? relative_path : relative_path.substr(slash + 1);
  const std::string what = "Cannot delete " + file.path();
  auto gone = [](int error) { return error == ENOENT || error == ESTALE; };

  UniqueFd parent;
  if (slash != std::string::npos) {
    int fd = OpenBeneath(dir.fd.get(), relative_path.substr(0, slash), kDirectoryPath);
    if (fd < 0) {
      int error = -fd;
      if (gone(error)) return std::nullopt;
      if (error == EXDEV || error == ELOOP) return OutsideBuffer(file.path());
      return LocalFailure(what, error);
    }
    parent.reset(fd);
  }
  int parent_fd = parent ? parent.get() : dir.fd.get();

  struct stat st {};
  if (::fstatat(parent_fd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    int error = errno;
    if (gone(error)) return std::nullopt;
    return LocalFailure(what, error);
  }
  // The same file, unchanged since it was opened: a file that grew, shrank
  // or was rewritten while it was uploaded holds bytes stored nowhere.
  const Error changed = Error::JobRetryable("Local file changed during sync: " + file.path())
                            .As(FaultClass::kLocalIo);
  if (st.st_dev != file.device() || st.st_ino != file.inode() ||
      static_cast<uint64_t>(st.st_size) != file.size()) {
    return changed;
  }
  if (st.st_ctim.tv_sec != file.changed_at_.tv_sec ||
      st.st_ctim.tv_nsec != file.changed_at_.tv_nsec) {
    // Metadata alone (a chmod, a hard link to the inode made or removed)
    // moves ctime as a write does: the bytes decide. Read through the
    // descriptor of the very inode, and only if nothing moved meanwhile.
    if (sha256.empty() || !SameBytes(file, sha256, st)) return changed;
  }
  if (::unlinkat(parent_fd, leaf.c_str(), 0) != 0) {
    int error = errno;
    if (gone(error)) return std::nullopt;
    return LocalFailure(what, error);
  }
  return Ok();
}

}  // namespace media_sync::buffer
