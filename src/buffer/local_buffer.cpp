#include "buffer/local_buffer.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

namespace media_sync::buffer {
namespace {

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

}  // namespace

Result<LocalBuffer> LocalBuffer::Create(std::string buffer_path, Resolver resolver) {
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
  return LocalBuffer(std::move(dir), std::move(path), std::move(components), std::move(canonical),
                     resolver);
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

int LocalBuffer::OpenBeneath(const std::string& relative_path, int flags) const {
  if (resolver_ == Resolver::kOpenat2) {
    return Openat2(dir_.get(), relative_path, flags, kBeneathNoLinks);
  }
  return WalkBeneath(relative_path, flags);
}

int LocalBuffer::WalkBeneath(const std::string& relative_path, int flags) const {
  std::vector<std::string> components = SplitComponents(relative_path);
  for (const std::string& component : components) {
    // RelativeToBuffer() already refused "..": this walk stays beneath even
    // if a caller forgets.
    if (component == "..") return -EXDEV;
  }
  if (components.empty()) components.emplace_back(".");

  UniqueFd current_dir;  // empty while at the buffer directory itself
  auto at = [&] { return current_dir ? current_dir.get() : dir_.get(); };
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

  int fd = OpenBeneath(*relative_path, kReadOnlyNonBlocking);
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
        return Error::JobRetryable("Cannot open " + std::string(local_path) + ": " +
                                   ErrnoText(error))
            .As(FaultClass::kLocalIo);
    }
  }
  UniqueFd file_fd(fd);
  struct stat st {};
  if (::fstat(file_fd.get(), &st) != 0) {
    return Error::JobRetryable("Cannot stat " + std::string(local_path) + ": " + ErrnoText(errno))
        .As(FaultClass::kLocalIo);
  }
  if (!S_ISREG(st.st_mode)) return NotRegularFile(local_path);
  // O_NONBLOCK has no effect on regular files; it only kept FIFOs from blocking.
  LocalFile file(std::move(file_fd), static_cast<uint64_t>(st.st_size), st.st_dev, st.st_ino,
                 std::string(local_path), std::move(*relative_path));
  file.changed_at_ = st.st_ctim;
  return std::optional<LocalFile>(std::move(file));
}

Status LocalBuffer::Remove(const LocalFile& file) const {
  const std::string& relative_path = file.relative_path();
  size_t slash = relative_path.rfind('/');
  std::string leaf = slash == std::string::npos ? relative_path : relative_path.substr(slash + 1);

  UniqueFd parent;
  if (slash != std::string::npos) {
    int fd = OpenBeneath(relative_path.substr(0, slash), kDirectoryPath);
    if (fd < 0) {
      int error = -fd;
      if (error == ENOENT) return Ok();
      if (error == EXDEV || error == ELOOP) return OutsideBuffer(file.path());
      return Error::JobRetryable("Cannot delete " + file.path() + ": " + ErrnoText(error))
          .As(FaultClass::kLocalIo);
    }
    parent.reset(fd);
  }
  int parent_fd = parent ? parent.get() : dir_.get();

  struct stat st {};
  if (::fstatat(parent_fd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    int error = errno;
    if (error == ENOENT) return Ok();
    return Error::JobRetryable("Cannot delete " + file.path() + ": " + ErrnoText(error))
        .As(FaultClass::kLocalIo);
  }
  // The same file, unchanged since it was opened: a file that grew, shrank
  // or was rewritten while it was uploaded holds bytes stored nowhere.
  if (st.st_dev != file.device() || st.st_ino != file.inode() ||
      static_cast<uint64_t>(st.st_size) != file.size() ||
      st.st_ctim.tv_sec != file.changed_at_.tv_sec ||
      st.st_ctim.tv_nsec != file.changed_at_.tv_nsec) {
    return Error::JobRetryable("Local file changed during sync: " + file.path())
        .As(FaultClass::kLocalIo);
  }
  if (::unlinkat(parent_fd, leaf.c_str(), 0) != 0) {
    int error = errno;
    if (error == ENOENT) return Ok();
    return Error::JobRetryable("Cannot delete " + file.path() + ": " + ErrnoText(error))
        .As(FaultClass::kLocalIo);
  }
  return Ok();
}

}  // namespace media_sync::buffer
