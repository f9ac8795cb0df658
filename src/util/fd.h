// UniqueFd: sole owner of one POSIX file descriptor, closed on destruction.
// Move-only. Not thread-safe to mutate; get() may be called concurrently.
#pragma once

#include <unistd.h>

#include <utility>

namespace media_sync {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }

  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }

  // Closes the owned descriptor (if any) and takes ownership of fd.
  void reset(int fd = -1) {
    int old = std::exchange(fd_, fd);
    // close() errors are not actionable here: the descriptor is released either way.
    if (old >= 0) ::close(old);
  }

 private:
  int fd_ = -1;
};

}  // namespace media_sync
