// BufferIntake: puts a file from outside into the media buffer at its
// content-addressed path (media/ab/cd/<sha256>.<ext>), for `media-sync
// enqueue`. It is the only code that writes into the buffer; the worker's
// LocalBuffer only reads and deletes. Like LocalBuffer, it works beneath one
// directory descriptor and never follows a symbolic link inside the buffer.
//
// A file is placed by a hard link when it is on the buffer's filesystem, else
// by a copy into a temporary file in the target directory that is hashed on
// the way, fsynced and renamed into place (never over an existing name). The
// directory is fsynced either way, so a placed file survives a crash. A file
// already at the target name stays; one of another size is an error, never
// overwritten.
//
// Thread-safety: immutable after Create(); Place() may run on many threads.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"
#include "util/fd.h"

namespace media_sync::buffer {

class BufferIntake {
 public:
  enum class Placed {
    kLinked,        // hard link to the given file
    kCopied,        // copied (another filesystem, or linking refused)
    kAlreadyThere,  // a file of the same size already had the name (maybe the very file)
  };

  // Opens buffer_path once. kConfiguration when it is missing or not a
  // directory.
  static Result<BufferIntake> Create(const std::string& buffer_path);

  // Places the regular file open as `fd` (`size` bytes, hashing to sha256)
  // at `relative_path` beneath the buffer, creating directories as needed.
  // relative_path must be a plain relative path without "." or ".."
  // components (kInput otherwise). Errors are kInput with an
  // operator-facing message: "<path> already exists with N bytes, expected
  // M: not overwritten", a copy whose bytes no longer hash to sha256 (the
  // file changed meanwhile), or an I/O error with its strerror text. Nothing
  // is left behind on failure. Does not own fd.
  Result<Placed> Place(int fd, uint64_t size, const std::string& sha256,
                       const std::string& relative_path) const;

  const std::string& path() const { return path_; }

 private:
  BufferIntake(UniqueFd dir, std::string path) : dir_(std::move(dir)), path_(std::move(path)) {}

  UniqueFd dir_;
  std::string path_;
};

// Human name of a stat() file type: "FIFO", "socket", "directory", ...
std::string FileTypeName(unsigned mode);

}  // namespace media_sync::buffer
