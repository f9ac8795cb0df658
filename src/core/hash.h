// Incremental SHA-256 and MD5 over OpenSSL's EVP interface.
// Not thread-safe: one hasher per stream of bytes. Move-only (owns an EVP_MD_CTX).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/result.h"

struct evp_md_ctx_st;

namespace media_sync {

class Hasher {
 public:
  enum class Algorithm { kSha256, kMd5 };

  explicit Hasher(Algorithm algorithm = Algorithm::kSha256);
  Hasher(Hasher&&) noexcept = default;
  Hasher& operator=(Hasher&&) noexcept = default;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Raw digest bytes; the hasher is finished afterwards (Reset to reuse).
  std::string FinishRaw();
  std::string FinishHex();
  void Reset();

 private:
  struct CtxDeleter {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  Algorithm algorithm_;
  std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx_;
};

std::string Sha256Hex(std::string_view data);
std::string Sha256Raw(std::string_view data);
std::string HmacSha256Raw(std::string_view key, std::string_view data);
std::string ToHex(std::string_view raw);
std::string Base64(std::string_view raw);
bool IsLowerHexSha256(std::string_view text);

// Reads bytes [0, size) of fd with pread, chunk by chunk through `buffer`,
// and hands each chunk in order to `each` (which returns false to stop).
// `error` is the errno of a failed read, 0 otherwise; `done` counts the bytes
// handed over, fewer than size when the file ended early, a read failed or
// `each` stopped.
struct ChunkedRead {
  uint64_t done = 0;
  int error = 0;
};
ChunkedRead ReadChunks(int fd, uint64_t size, std::span<char> buffer,
                       const std::function<bool(const char* data, size_t size)>& each);

// SHA-256 of bytes [0, size) of fd, read with pread through a buffer of
// buffer_size bytes. Fails (kJobRetryable) if the file holds fewer bytes;
// outage never (local I/O errors are reported as kJobRetryable with errno text).
Result<std::string> Sha256OfFd(int fd, uint64_t size, size_t buffer_size = size_t{256} * 1024);

}  // namespace media_sync
