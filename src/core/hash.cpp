#include "core/hash.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/error_texts.h"

namespace media_sync {

void Hasher::CtxDeleter::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Hasher::Hasher(Algorithm algorithm) : algorithm_(algorithm), ctx_(EVP_MD_CTX_new()) {
  if (!ctx_) throw std::bad_alloc();
  Reset();
}

void Hasher::Reset() {
  const EVP_MD* md = algorithm_ == Algorithm::kSha256 ? EVP_sha256() : EVP_md5();
  if (EVP_DigestInit_ex(ctx_.get(), md, nullptr) != 1) {
    throw std::runtime_error("EVP_DigestInit_ex failed");
  }
}

void Hasher::Update(const void* data, size_t size) {
  if (size > 0) EVP_DigestUpdate(ctx_.get(), data, size);
}

std::string Hasher::FinishRaw() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx_.get(), digest, &length);
  return {reinterpret_cast<const char*>(digest), length};
}

std::string Hasher::FinishHex() { return ToHex(FinishRaw()); }

std::string Sha256Raw(std::string_view data) {
  Hasher hasher;
  hasher.Update(data);
  return hasher.FinishRaw();
}

std::string Sha256Hex(std::string_view data) { return ToHex(Sha256Raw(data)); }

std::string HmacSha256Raw(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length);
  return {reinterpret_cast<const char*>(out), length};
}

std::string ToHex(std::string_view raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 0xf]);
  }
  return hex;
}

std::string Base64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                               reinterpret_cast<const unsigned char*>(raw.data()),
                               static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(length));
  return out;
}

bool IsLowerHexSha256(std::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

ChunkedRead ReadChunks(int fd, uint64_t size, std::span<char> buffer,
                       const std::function<bool(const char* data, size_t size)>& each) {
  ChunkedRead read;
  while (read.done < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - read.done));
    ssize_t got = pread(fd, buffer.data(), want, static_cast<off_t>(read.done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      read.error = errno;
      return read;
    }
    if (got == 0 || !each(buffer.data(), static_cast<size_t>(got))) return read;
    read.done += static_cast<uint64_t>(got);
  }
  return read;
}

Result<std::string> Sha256OfFd(int fd, uint64_t size, size_t buffer_size) {
  std::vector<char> buffer(buffer_size);
  Hasher hasher;
  ChunkedRead read = ReadChunks(fd, size, buffer, [&](const char* data, size_t n) {
    hasher.Update(data, n);
    return true;
  });
  if (read.error != 0) {
    return Error::JobRetryable(std::string("Cannot read local file: ") + std::strerror(read.error))
        .As(FaultClass::kLocalIo);
  }
  if (read.done < size) {
    return Error::JobRetryable(SizeMismatch(size, read.done)).As(FaultClass::kSizeMismatch);
  }
  return hasher.FinishHex();
}

}  // namespace media_sync
