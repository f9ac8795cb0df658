// Incremental SHA-256 and MD5 over OpenSSL's EVP interface.
// Not thread-safe: one hasher per stream of bytes. Move-only (owns an EVP_MD_CTX).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
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

// SHA-256 of bytes [0, size) of fd, read with pread through a buffer of
// buffer_size bytes. Fails (kJobRetryable) if the file holds fewer bytes;
// outage never (local I/O errors are reported as kJobRetryable with errno text).
Result<std::string> Sha256OfFd(int fd, uint64_t size, size_t buffer_size = size_t{256} * 1024);

}  // namespace media_sync
