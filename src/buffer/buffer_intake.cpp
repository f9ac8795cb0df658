#include "buffer/buffer_intake.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

#include "core/hash.h"

namespace media_sync::buffer {
namespace {

constexpr size_t kCopyChunk = size_t{1} << 20;

std::string Errno(int error) { return std::strerror(error); }

Error IoError(const std::string& what, const std::string& path, int error) {
  return Error::Input(what + " " + path + ": " + Errno(error));
}

// "media/ab/cd/x.jpg" -> {"media", "ab", "cd", "x.jpg"}; nullopt for an
// absolute path, an empty, "." or ".." component.
std::optional<std::vector<std::string>> Components(std::string_view path) {
  std::vector<std::string> parts;
  if (path.empty() || path.front() == '/') return std::nullopt;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") return std::nullopt;
    parts.emplace_back(part);
    start = slash + 1;
  }
  return parts;
}

// What is at `name` in `dir` now.
struct Existing {
  bool present = false;
  Result<BufferIntake::Placed> verdict = BufferIntake::Placed::kAlreadyThere;
};

Existing CheckExisting(int dir, const std::string& name, const std::string& shown, uint64_t size) {
  struct stat st {};
  if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return {true, IoError("cannot stat", shown, errno)};
  }
  if (!S_ISREG(st.st_mode)) {
    return {true, Error::Input(shown + " already exists and is a " + FileTypeName(st.st_mode) +
                               ", not a regular file")};
  }
  if (static_cast<uint64_t>(st.st_size) != size) {
    return {true, Error::Input(shown + " already exists with " + std::to_string(st.st_size) +
                               " bytes, expected " + std::to_string(size) + ": not overwritten")};
  }
  return {true, BufferIntake::Placed::kAlreadyThere};
}

// Removes a temporary file unless it was renamed into place.
class TempFile {
 public:
  TempFile(int dir, std::string name) : dir_(dir), name_(std::move(name)) {}
  ~TempFile() {
    if (!kept_) unlinkat(dir_, name_.c_str(), 0);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  void Keep() { kept_ = true; }
  const std::string& name() const { return name_; }

 private:
  int dir_;
  std::string name_;
  bool kept_ = false;
};

std::string TempName(const std::string& name) {
  std::random_device entropy;
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "%d-%08x", static_cast<int>(getpid()),
                static_cast<unsigned>(entropy()));
  return "." + name + ".enqueue-" + suffix;
}

// Copies bytes [0, size) of `from` into `to`, hashing them on the way; fails
// when they do not hash to sha256 (the source changed after it was hashed).
Status CopyHashed(int from, int to, uint64_t size, const std::string& sha256,
                  const std::string& shown) {
  std::vector<char> chunk(kCopyChunk);
  Hasher hasher;
  int write_error = 0;
  ChunkedRead read = ReadChunks(from, size, chunk, [&](const char* data, size_t n) {
    hasher.Update(data, n);
    for (size_t written = 0; written < n;) {
      ssize_t wrote = write(to, data + written, n - written);
      if (wrote < 0 && errno == EINTR) continue;
      if (wrote < 0) {
        write_error = errno;
        return false;
      }
      written += static_cast<size_t>(wrote);
    }
    return true;
  });
  if (write_error != 0) return IoError("cannot write", shown, write_error);
  if (read.error != 0) return Error::Input("cannot read the file: " + Errno(read.error));
  if (read.done < size) {
    return Error::Input("the file shrank to " + std::to_string(read.done) +
                        " bytes while it was copied into the buffer");
  }
  if (std::string copied = hasher.FinishHex(); copied != sha256) {
    return Error::Input("the file changed while it was copied into the buffer (sha256 " + copied +
                        ", expected " + sha256 + ")");
  }
  return Ok();
}

// rename without replacing; falls back to link + unlink where the
// filesystem has no RENAME_NOREPLACE. errno is set on failure.
bool RenameNoReplace(int dir, const std::string& from, const std::string& to) {
  if (renameat2(dir, from.c_str(), dir, to.c_str(), RENAME_NOREPLACE) == 0) return true;
  if (errno != EINVAL && errno != ENOSYS) return false;
  if (linkat(dir, from.c_str(), dir, to.c_str(), 0) != 0) return false;
  unlinkat(dir, from.c_str(), 0);
  return true;
}

}  // namespace

std::string FileTypeName(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "regular file";
    case S_IFDIR:
      return "directory";
    case S_IFIFO:
      return "FIFO";
    case S_IFSOCK:
      return "socket";
    case S_IFCHR:
      return "character device";
    case S_IFBLK:
      return "block device";
    case S_IFLNK:
      return "symbolic link";
    default:
      return "special file";
  }
}

Result<BufferIntake> BufferIntake::Create(const std::string& buffer_path) {
  UniqueFd dir(open(buffer_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    return Error::Configuration("cannot open the buffer directory " + buffer_path + ": " +
                                Errno(errno));
  }
  return BufferIntake(std::move(dir), buffer_path);
}

Result<BufferIntake::Placed> BufferIntake::Place(int fd, uint64_t size, const std::string& sha256,
                                                 const std::string& relative_path) const {
  auto parts = Components(relative_path);
  if (!parts) {
    return Error::Input("not a plain path inside the buffer: '" + relative_path + "'");
  }
  const std::string shown = path_ + "/" + relative_path;
  const std::string name = parts->back();
  parts->pop_back();

  // The directories, created as needed, never through a symbolic link.
  UniqueFd dir(fcntl(dir_.get(), F_DUPFD_CLOEXEC, 0));
  if (!dir) return IoError("cannot use", path_, errno);
  std::string walked = path_;
  for (const std::string& part : *parts) {
    walked += "/" + part;
    int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    UniqueFd next(openat(dir.get(), part.c_str(), flags));
    if (!next && errno == ENOENT) {
      if (mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
        return IoError("cannot create directory", walked, errno);
      }
      next.reset(openat(dir.get(), part.c_str(), flags));
    }
    if (!next) {
      if (errno == ELOOP || errno == ENOTDIR) {
        return Error::Input(walked + " is not a directory (or is a symbolic link)");
      }
      return IoError("cannot open directory", walked, errno);
    }
    dir = std::move(next);
  }

  if (Existing existing = CheckExisting(dir.get(), name, shown, size); existing.present) {
    return existing.verdict;
  }

  // Same filesystem: a hard link to the very file that was hashed (through
  // its descriptor, so a name swapped since cannot be linked instead).
  std::string self = "/proc/self/fd/" + std::to_string(fd);
  if (linkat(AT_FDCWD, self.c_str(), dir.get(), name.c_str(), AT_SYMLINK_FOLLOW) == 0) {
    if (fsync(dir.get()) != 0) return IoError("cannot fsync directory", walked, errno);
    return Placed::kLinked;
  }
  int link_error = errno;
  if (link_error == EEXIST) {
    Existing existing = CheckExisting(dir.get(), name, shown, size);
    if (existing.present) return existing.verdict;
    return Error::Input(shown + " appeared and vanished while it was being placed");
  }
  // EXDEV: another filesystem. EPERM/EACCES: linking refused (protected
  // hard links, a filesystem without links); ENOENT: no /proc. Copy instead.
  if (link_error != EXDEV && link_error != EPERM && link_error != EACCES && link_error != ENOENT &&
      link_error != EMLINK && link_error != EOPNOTSUPP) {
    return IoError("cannot link into", shown, link_error);
  }

  TempFile temp(dir.get(), TempName(name));
  UniqueFd out(openat(dir.get(), temp.name().c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out) {
    temp.Keep();  // nothing was created
    return IoError("cannot create a temporary file in", walked, errno);
  }
  if (auto copied = CopyHashed(fd, out.get(), size, sha256, shown); !copied) {
    return copied.error();
  }
  if (fsync(out.get()) != 0) return IoError("cannot fsync", shown, errno);
  out.reset();
  if (!RenameNoReplace(dir.get(), temp.name(), name)) {
    if (errno == EEXIST) {
      Existing existing = CheckExisting(dir.get(), name, shown, size);
      if (existing.present) return existing.verdict;
    }
    return IoError("cannot rename into", shown, errno);
  }
  temp.Keep();
  if (fsync(dir.get()) != 0) return IoError("cannot fsync directory", walked, errno);
  return Placed::kCopied;
}

}  // namespace media_sync::buffer
