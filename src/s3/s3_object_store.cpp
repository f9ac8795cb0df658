#include "s3/s3_object_store.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <random>

#include "core/error_texts.h"
#include "core/hash.h"
#include "s3/s3_errors.h"

namespace media_sync::s3 {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kMinPartSize = 5 * kMiB;
constexpr uint64_t kMaxParts = 10000;
constexpr uint64_t kMaxSinglePut = 5ull << 30;        // S3: one PutObject
constexpr size_t kStreamBuffer = size_t{256} * 1024;  // first-pass read size of a streamed PUT
constexpr std::string_view kProbePrefix = ".media-sync/probe/";  // outside media/

std::string RandomHex(size_t bytes) {
  thread_local std::mt19937_64 random(std::random_device{}());
  std::string raw(bytes, '\0');
  for (char& c : raw) c = static_cast<char>(random() & 0xff);
  return ToHex(raw);
}

std::string HexToRaw(std::string_view hex) {
  std::string raw(hex.size() / 2, '\0');
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (size_t i = 0; i < raw.size(); ++i) {
    raw[i] = static_cast<char>((nibble(hex[2 * i]) << 4) | nibble(hex[2 * i + 1]));
  }
  return raw;
}

std::string HashMismatch(const std::string& expected, const std::string& got) {
  return "SHA-256 mismatch: expected " + expected + ", got " + got;
}

// Reads exactly length bytes at offset; a file that ends early is the job's
// fault (it shrank, or the job's size is wrong).
Status ReadExactly(int fd, char* buffer, size_t length, uint64_t offset, uint64_t expected_size) {
  size_t done = 0;
  while (done < length) {
    ssize_t got = pread(fd, buffer + done, length - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return Error::JobRetryable(std::string("Cannot read local file: ") + std::strerror(errno))
          .As(FaultClass::kLocalIo);
    }
    if (got == 0) {
      return Error::JobRetryable(SizeMismatch(expected_size, offset + done))
          .As(FaultClass::kSizeMismatch);
    }
    done += static_cast<size_t>(got);
  }
  return Ok();
}

// A body with its SHA-256 (the signed payload hash) and, when asked, its MD5:
// sent as Content-MD5, and the ETag a server answers for exactly these bytes.
struct HashedPayload {
  Payload payload;
  std::string md5_hex;
};

HashedPayload MakePayload(const char* data, size_t size, bool with_md5) {
  HashedPayload hashed;
  hashed.payload.bytes = std::span<const char>(data, size);
  std::string_view view(data, size);
  hashed.payload.sha256_hex = Sha256Hex(view);
  if (with_md5) {
    Hasher md5(Hasher::Algorithm::kMd5);
    md5.Update(view);
    std::string raw = md5.FinishRaw();
    hashed.payload.md5_base64 = Base64(raw);
    hashed.md5_hex = ToHex(raw);
  }
  return hashed;
}

// The body of a streamed PutObject, read from the file as curl asks for it:
// every byte handed over is hashed, and the last ones only if the whole body
// hashes to `expected`, so a file that is not (or no longer) the job's never
// completes a request (the server sees a short body). Offsets grow, except a
// rewind to 0 when curl resends the request on a fresh connection.
class HashingReader {
 public:
  HashingReader(int fd, uint64_t size, std::string expected,
                std::function<bool(uint64_t)> cut = nullptr, std::string mismatch_note = "")
      : fd_(fd),
        size_(size),
        expected_(std::move(expected)),
        cut_(std::move(cut)),
        mismatch_note_(std::move(mismatch_note)) {}

  long Read(char* buffer, size_t capacity, uint64_t offset) {
    if (offset == 0) {
      hasher_.Reset();
      next_ = 0;
    }
    if (offset != next_) return -1;
    if (cut_ && cut_(offset)) return -1;
    size_t n = static_cast<size_t>(std::min<uint64_t>(capacity, size_ - offset));
    if (n == 0) return 0;
    if (Status status = ReadExactly(fd_, buffer, n, offset, size_); !status.ok()) {
      failure_ = status.error();
      return -1;
    }
    hasher_.Update(buffer, n);
    next_ += n;
    if (next_ == size_) {
      std::string sent = hasher_.FinishHex();
      if (sent != expected_) {
        failure_ = Error::JobRetryable(HashMismatch(expected_, sent) + mismatch_note_)
                       .As(FaultClass::kHashMismatch);
        return -1;
      }
    }
    return static_cast<long>(n);
  }

  // Why the reader stopped the request (the file's fault), if it did.
  const std::optional<Error>& failure() const { return failure_; }
  // Every byte was read, and they hash to `expected`.
  bool Matched() const { return next_ == size_ && !failure_; }

 private:
  const int fd_;
  const uint64_t size_;
  const std::string expected_;
  const std::function<bool(uint64_t)> cut_;
  const std::string mismatch_note_;
  Hasher hasher_;
  uint64_t next_ = 0;
  std::optional<Error> failure_;
};

bool IsIdentical(const ObjectInfo& object, uint64_t size, const std::string& sha256_hex) {
  return object.size == size && object.sha256 == sha256_hex;
}

// A recorded part is these bytes when its size matches and the ETag the
// server answered for it is their MD5 (the part ETag of MinIO, AWS without
// SSE-KMS, Ceph RGW and s3rver). Any other ETag proves nothing: resent.
bool IsStoredPart(const JournaledPart& part, const char* data, size_t length) {
  if (part.size != length) return false;
  Hasher md5(Hasher::Algorithm::kMd5);
  md5.Update(data, length);
  std::string etag = part.etag;
  std::transform(etag.begin(), etag.end(), etag.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return etag == md5.FinishHex();
}

}  // namespace

S3ObjectStore::S3ObjectStore(const S3Options& options, Hooks hooks)
    : S3ObjectStore(options, BufferPool::Process(options.buffer_pool_bytes), std::move(hooks)) {}

S3ObjectStore::S3ObjectStore(const S3Options& options, BufferPool& pool, Hooks hooks)
    : S3ObjectStore(options, pool, nullptr, std::move(hooks)) {}

S3ObjectStore::S3ObjectStore(const S3Options& options, BufferPool& pool,
                             std::shared_ptr<UploadJournal> journal, Hooks hooks)
    : client_(options), pool_(pool), journal_(std::move(journal)), hooks_(std::move(hooks)) {}

uint64_t S3ObjectStore::PartSizeFor(uint64_t file_size, uint64_t configured) {
  uint64_t part = std::max(configured, (file_size + kMaxParts - 1) / kMaxParts);
  part = (part + kMiB - 1) / kMiB * kMiB;
  return std::max(part, kMinPartSize);
}

Status S3ObjectStore::FitsThePool(uint64_t size) const {
  const uint64_t part_size = PartSizeFor(size, client_.options().part_size);
  if (part_size > pool_.capacity()) {
    // A property of this file under these settings, not of the box: every
    // attempt would fail the same way, and the box must stay up for the rest.
    return Error::JobPermanent("File of " + std::to_string(size) + " bytes needs parts of " +
                               std::to_string(part_size) + " bytes to stay within S3's " +
                               std::to_string(kMaxParts) + " parts, more than S3_BUFFER_POOL (" +
                               std::to_string(pool_.capacity()) +
                               " bytes) can hold: raise S3_BUFFER_POOL to at least " +
                               std::to_string(part_size / kMiB) + "MiB and requeue the job")
        .As(FaultClass::kTooLarge);
  }
  return Ok();
}

Result<std::optional<ObjectInfo>> S3ObjectStore::Stat(const std::string& key,
                                                      std::stop_token stop) {
  return client_.HeadObject(key, std::move(stop));
}

Result<ObjectInfo> S3ObjectStore::Upload(const std::string& key, int fd, uint64_t size,
                                         const std::string& sha256_hex, std::stop_token stop) {
  if (!IsLowerHexSha256(sha256_hex)) {
    return Error::JobPermanent("Invalid sha256 '" + sha256_hex + "': expected 64 lowercase hex")
        .As(FaultClass::kInvalidJob);
  }
  // Three ways, each sending only bytes that hash to sha256_hex:
  //  - up to one part: read whole into a pooled buffer, hashed, PUT from it;
  //  - up to the multipart threshold: a PUT streamed from the file at
  //    constant memory, the file hashed before and again while it is sent;
  //  - above: multipart, parts in parallel from pooled buffers.
  bool emptied = false;
  auto uploaded = UploadOnce(key, fd, size, sha256_hex, stop, emptied);
  if (uploaded.ok() || !emptied) return uploaded;
  if (stop.stop_requested()) {
    spdlog::warn("{} left empty after removing a truncated body: stopped before uploading again",
                 key);
    return uploaded;
  }
  // The delete may have taken a good object another worker stored meanwhile:
  // put it back from this file.
  bool ignored = false;
  auto again = UploadOnce(key, fd, size, sha256_hex, stop, ignored);
  if (again.ok()) return again;
  spdlog::warn("{} left empty after removing a truncated body; uploading it again failed: {}", key,
               again.error().message);
  return uploaded;
}

Result<ObjectInfo> S3ObjectStore::UploadOnce(const std::string& key, int fd, uint64_t size,
                                             const std::string& sha256_hex,
                                             const std::stop_token& stop, bool& emptied) {
  const auto& options = client_.options();
  const uint64_t buffered_limit =
      std::min({options.part_size, options.MultipartThreshold(false), pool_.capacity()});
  if (size <= buffered_limit) return UploadWhole(key, fd, size, sha256_hex, stop, emptied);
  if (size <= std::min(options.MultipartThreshold(true), kMaxSinglePut)) {
    // One request where the server proves it: the first such file asks.
    auto verification = EnsureVerificationKnown(stop);
    if (!verification.ok()) return verification.error();
    if (verification->Proves()) return UploadVerified(key, fd, size, sha256_hex, stop);
  }
  const bool multipart = size > std::min(options.MultipartThreshold(false), kMaxSinglePut);
  // Found before the box is asked anything: a fault of the file, not the box.
  if (multipart) {
    if (Status fits = FitsThePool(size); !fits.ok()) return fits.error();
  }
  // A larger file is worth a HeadObject first: an identical object already
  // stored saves sending it again.
  auto existing = FindIdentical(key, fd, size, sha256_hex, stop);
  if (!existing.ok()) return existing.error();
  if (existing->has_value()) return std::move(**existing);
  if (!multipart) return UploadStreamed(key, fd, size, sha256_hex, stop, emptied);
  Status status = UploadMultipart(key, fd, size, sha256_hex, stop);
  if (!status.ok()) return status.error();
  auto verified = Verify(key, size, sha256_hex, stop);
  // A lenient server assembles the parts it holds without checking their
  // ETags: a part cut short by an attempt that died (its bytes kept) makes a
  // short object, taken away as a short PutObject body is.
  if (!verified.ok() && verified.error().fault == FaultClass::kSizeMismatch) {
    emptied = RemoveTruncated(key, size);
  }
  return verified;
}

Result<std::optional<ObjectInfo>> S3ObjectStore::FindIdentical(const std::string& key, int fd,
                                                               uint64_t size,
                                                               const std::string& sha256_hex,
                                                               const std::stop_token& stop) {
  auto head = client_.HeadObject(key, stop);
  if (!head.ok()) return head.error();
  if (!head->has_value() || !IsIdentical(**head, size, sha256_hex)) {
    return std::optional<ObjectInfo>();
  }
  // Nothing to send, but the local copy is deleted once this returns: its
  // own bytes must be the job's.
  auto local_hash = Sha256OfFd(fd, size);
  if (!local_hash.ok()) return local_hash.error();
  if (*local_hash != sha256_hex) {
    return Error::JobRetryable("Local file does not match sha256: expected " + sha256_hex +
                               ", got " + *local_hash)
        .As(FaultClass::kHashMismatch);
  }
  ObjectInfo info = **head;
  info.already_stored = true;
  Proven(Proof::kAlreadyStored);
  return std::optional<ObjectInfo>(std::move(info));
}

Result<ObjectInfo> S3ObjectStore::UploadWhole(const std::string& key, int fd, uint64_t size,
                                              const std::string& sha256_hex,
                                              const std::stop_token& stop, bool& emptied) {
  const bool server_proves = verification().payload_hash;
  std::string etag;
  std::string md5_hex;
  {
    auto lease = pool_.Acquire(std::max<size_t>(size, 1), stop);
    if (!lease.ok()) return lease.error();
    char* data = lease->data();
    if (Status read = ReadExactly(fd, data, size, 0, size); !read.ok()) return read.error();
    // The MD5 is what a server's ETag proves; a server that proves what it
    // stores needs none.
    HashedPayload hashed = MakePayload(data, size, /*with_md5=*/!server_proves);
    const Payload& payload = hashed.payload;
    md5_hex = std::move(hashed.md5_hex);
    if (payload.sha256_hex != sha256_hex) {
      return Error::JobRetryable(HashMismatch(sha256_hex, payload.sha256_hex))
          .As(FaultClass::kHashMismatch);
    }
    const std::map<std::string, std::string> metadata = {{"sha256", sha256_hex}};
    // No HeadObject first: the PUT asks the server to keep an object already
    // under key. A server that ignores the condition stores these very bytes
    // again, which is harmless under a content-addressed key.
    auto put = client_.PutObjectIfAbsent(key, payload, metadata, stop);
    if (put.ok() && !put->has_value()) {
      auto existing = client_.HeadObject(key, stop);
      if (!existing.ok()) return existing.error();
      if (existing->has_value() && IsIdentical(**existing, size, sha256_hex)) {
        // Its bytes were hashed above: the local copy is the job's.
        ObjectInfo info = **existing;
        info.already_stored = true;
        Proven(Proof::kAlreadyStored);
        return info;
      }
      // Another object (a short body, another file's bytes): replace it.
      auto replaced = client_.PutObject(key, payload, metadata, stop);
      if (replaced.ok()) {
        put = std::optional<std::string>(std::move(replaced).value());
      } else {
        put = replaced.error();
      }
    }
    if (!put.ok()) {
      // A server that keeps whatever arrived may now hold a prefix of the
      // file under key: take it away (a good object always has the full size).
      if (put.error().kind == ErrorKind::kOutage || put.error().kind == ErrorKind::kCancelled) {
        emptied = RemoveTruncated(key, size);
      }
      return put.error();
    }
    etag = std::move(**put);
  }  // the buffer goes back to the pool before any verification round trip
  if (server_proves) {
    // It refuses a body that does not hash to the signed sha256: its 200 is the proof.
    Proven(Proof::kServerVerified);
    return ObjectInfo{size, sha256_hex, std::move(etag)};
  }
  return Acknowledged(key, size, sha256_hex, std::move(etag), md5_hex, stop);
}

Result<ObjectInfo> S3ObjectStore::Acknowledged(const std::string& key, uint64_t size,
                                               const std::string& sha256_hex, std::string etag,
                                               const std::string& md5_hex,
                                               const std::stop_token& stop) {
  if (hooks_.on_put_answer) hooks_.on_put_answer(etag);
  // The single-part ETag is the MD5 of the body the server stored (MinIO,
  // AWS without SSE-KMS, Ceph RGW, s3rver): equal to the MD5 of the bytes
  // hashed on their way out, it proves the object is those bytes, and the
  // metadata came in the same request. Anything else proves nothing.
  if (!md5_hex.empty() && etag == md5_hex) {
    Proven(Proof::kEtag);
    return ObjectInfo{size, sha256_hex, std::move(etag)};
  }
  return Verify(key, size, sha256_hex, stop);
}

void S3ObjectStore::Proven(Proof proof) const {
  if (hooks_.on_proven) hooks_.on_proven(proof);
}

Result<ObjectInfo> S3ObjectStore::UploadStreamed(const std::string& key, int fd, uint64_t size,
                                                 const std::string& sha256_hex,
                                                 const std::stop_token& stop, bool& emptied) {
  // First pass: a lying job is refused before a byte is sent.
  std::string md5_base64;
  std::string md5_hex;
  {
    std::vector<char> buffer(kStreamBuffer);
    Hasher sha256;
    std::optional<Hasher> md5;
    if (client_.options().content_md5) md5.emplace(Hasher::Algorithm::kMd5);
    for (uint64_t offset = 0; offset < size;) {
      if (stop.stop_requested()) return Error::Cancelled("PutObject " + key + ": stopped");
      size_t n = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - offset));
      if (Status read = ReadExactly(fd, buffer.data(), n, offset, size); !read.ok()) {
        return read.error();
      }
      sha256.Update(buffer.data(), n);
      if (md5) md5->Update(buffer.data(), n);
      offset += n;
    }
    std::string actual = sha256.FinishHex();
    if (actual != sha256_hex)
      return Error::JobRetryable(HashMismatch(sha256_hex, actual)).As(FaultClass::kHashMismatch);
    if (md5) {
      std::string raw = md5->FinishRaw();
      md5_base64 = Base64(raw);
      md5_hex = ToHex(raw);
    }
  }
  if (hooks_.before_stream) hooks_.before_stream();

  // Second pass, from the page cache: the bytes handed to curl are hashed
  // again, and the last ones are handed over only if the whole body still
  // hashes to sha256_hex. A file changed since the first pass therefore never
  // completes a request: the server sees a short body.
  HashingReader stream(fd, size, sha256_hex, hooks_.cut_stream,
                       " (the file changed while it was sent)");
  auto read = [&stream](char* buffer, size_t capacity, uint64_t offset) {
    return stream.Read(buffer, capacity, offset);
  };
  auto put = client_.PutObjectStream(key, size, sha256_hex, md5_base64, read,
                                     {{"sha256", sha256_hex}}, stop);
  if (!put.ok()) {
    if (stream.failure() || put.error().kind == ErrorKind::kOutage ||
        put.error().kind == ErrorKind::kCancelled) {
      emptied = RemoveTruncated(key, size);
    }
    if (stream.failure()) return *stream.failure();
    return put.error();
  }
  // With S3_CONTENT_MD5 the MD5 is known, and the ETag can prove the body.
  return Acknowledged(key, size, sha256_hex, std::move(put).value(), md5_hex, stop);
}

Result<ObjectInfo> S3ObjectStore::UploadVerified(const std::string& key, int fd, uint64_t size,
                                                 const std::string& sha256_hex,
                                                 const std::stop_token& stop) {
  // The job's sha256 is the whole body's hash, known before a byte is read
  // (content addressing): the request is signed with it, and carries it as
  // x-amz-checksum-sha256 where the server checks that. The server stores
  // the body only if it hashes to sha256 (a short or other body is refused,
  // and nothing is kept), so its 200 is the proof: no HeadObject before or
  // after. The bytes are hashed on their way out all the same, in the same
  // pass, so that a lying job is named by its own fault and its last bytes
  // are never sent.
  const Verification verification = this->verification();
  const std::string checksum = verification.checksum_sha256 ? Base64(HexToRaw(sha256_hex)) : "";
  const std::map<std::string, std::string> metadata = {{"sha256", sha256_hex}};
  HashingReader stream(fd, size, sha256_hex, hooks_.cut_stream);
  auto read = [&stream](char* buffer, size_t capacity, uint64_t offset) {
    return stream.Read(buffer, capacity, offset);
  };
  if (hooks_.before_stream) hooks_.before_stream();
  auto put = client_.PutObjectStreamIfAbsent(key, size, sha256_hex, checksum, read, metadata, stop);
  if (!put.ok()) {
    if (stream.failure()) return *stream.failure();
    return put.error();
  }
  if (put->has_value()) {
    Proven(Proof::kServerVerified);
    return ObjectInfo{size, sha256_hex, std::move(**put)};
  }
  // An object is already under key (412): kept when it is this file (the
  // local bytes hashed, if the server answered before reading them all).
  auto existing = FindIdentical(key, fd, size, sha256_hex, stop);
  if (!existing.ok()) return existing.error();
  if (existing->has_value()) return std::move(**existing);
  // Another object (another file's bytes): replaced, and read back.
  HashingReader again(fd, size, sha256_hex, hooks_.cut_stream);
  auto replaced = client_.PutObjectStream(
      key, size, sha256_hex, "",
      [&again](char* buffer, size_t capacity, uint64_t offset) {
        return again.Read(buffer, capacity, offset);
      },
      metadata, stop);
  if (!replaced.ok()) {
    if (again.failure()) return *again.failure();
    return replaced.error();
  }
  return Verify(key, size, sha256_hex, stop);
}

Result<S3ObjectStore::Verification> S3ObjectStore::EnsureVerificationKnown(
    const std::stop_token& stop) {
  MutexLock lock(detect_mutex_);
  if (detected_) return verification();
  auto found = Probe(stop);
  if (found.ok()) detected_ = true;
  return found;
}

Result<S3ObjectStore::Verification> S3ObjectStore::DetectVerification(const std::stop_token& stop) {
  MutexLock lock(detect_mutex_);
  auto found = Probe(stop);
  if (found.ok()) detected_ = true;
  return found;
}

S3ObjectStore::Verification S3ObjectStore::verification() const {
  return Verification{proves_payload_hash_.load(), proves_checksum_.load()};
}

Result<S3ObjectStore::Verification> S3ObjectStore::Probe(const std::stop_token& stop) {
  static constexpr std::string_view kProbeBody = "media-sync: what does this server verify?";
  const std::string key = std::string(kProbePrefix) + RandomHex(8);
  const std::span<const char> body(kProbeBody.data(), kProbeBody.size());
  const std::string right = Sha256Hex(kProbeBody);
  const std::string other = Sha256Raw("another body");
  bool stored = false;
  // Refused (true), kept (false), or neither: the refusal proves nothing
  // when it is not about the content (logged), and an outage is an error.
  auto refuses = [&](const char* what, const std::string& signed_hash,
                     const HeaderList& headers) -> Result<bool> {
    auto answer = client_.ProbePut(key, body, signed_hash, headers, stop);
    if (!answer.ok()) return answer.error();
    if (answer->status >= 200 && answer->status < 300) {
      stored = true;
      return false;
    }
    const std::string code = ParseS3ErrorBody(answer->body).code;
    if (answer->status == 400 && (code == "XAmzContentSHA256Mismatch" || code == "BadDigest" ||
                                  code == "XAmzContentChecksumMismatch")) {
      return true;
    }
    Error error = ClassifyHttpError(answer->status, answer->body, "PutObject", key);
    if (error.kind == ErrorKind::kOutage) return error;
    spdlog::warn("{}: a probe with {} was refused for another reason, so it proves nothing: {}",
                 client_.options().endpoint, what, error.message);
    return false;
  };
  auto payload_hash = refuses("a wrong signed payload hash", ToHex(other), {});
  if (!payload_hash.ok()) return payload_hash.error();
  auto checksum =
      refuses("a wrong x-amz-checksum-sha256", right, {{"x-amz-checksum-sha256", Base64(other)}});
  if (!checksum.ok()) return checksum.error();
  if (stored) {
    // A lenient server kept the probe's bytes under the probe key: not media.
    if (Status removed = client_.DeleteObject(key, stop); !removed.ok()) {
      spdlog::warn("{}: cannot remove the probe object {}: {}", client_.options().endpoint, key,
                   removed.error().message);
    }
  }
  Verification found{*payload_hash, *checksum};
  if (hooks_.on_verification) hooks_.on_verification(found);
  proves_payload_hash_ = found.payload_hash;
  proves_checksum_ = found.checksum_sha256;
  spdlog::info("{} verifies {}", client_.options().endpoint,
               found.payload_hash && found.checksum_sha256
                   ? "the signed payload hash and x-amz-checksum-sha256: one request per file"
               : found.payload_hash    ? "the signed payload hash: one request per file"
               : found.checksum_sha256 ? "x-amz-checksum-sha256: one request per file"
                                       : "nothing: uploads are proven by ETag or HeadObject");
  return found;
}

bool S3ObjectStore::RemoveTruncated(const std::string& key, uint64_t size) {
  // Only what was just seen short, and only that very body (If-Match).
  auto head = client_.HeadObject(key);
  if (!head.ok() || !head->has_value() || (*head)->size == size) return false;
  spdlog::warn("Removing truncated object {} ({} of {} bytes) left by an interrupted PutObject",
               key, (*head)->size, size);
  if (hooks_.before_truncated_delete) hooks_.before_truncated_delete(key);
  auto removed = client_.DeleteObjectIfMatch(key, (*head)->etag);
  if (!removed.ok()) {
    spdlog::warn("Cannot remove truncated object {}: {}", key, removed.error().message);
    return false;
  }
  if (!*removed) {
    spdlog::info("Truncated object {} was replaced before it could be removed: left alone", key);
    return false;
  }
  // What is there now? A good object stored after the delete is kept; an
  // empty key may mean the server ignored If-Match and removed a good one.
  auto after = client_.HeadObject(key);
  return !after.ok() || !after->has_value();  // unknown counts as empty: the worst case
}

std::string S3ObjectStore::JournalName(const std::string& key) const {
  const auto& options = client_.options();
  return options.endpoint + "/" + options.bucket + "/" + key;
}

Status S3ObjectStore::UploadMultipart(const std::string& key, int fd, uint64_t size,
                                      const std::string& sha256_hex, const std::stop_token& stop) {
  if (Status fits = FitsThePool(size); !fits.ok()) return fits;
  const std::string name = JournalName(key);
  const uint64_t part_size = PartSizeFor(size, client_.options().part_size);
  // An upload the server no longer knows (NoSuchUpload) was completed by
  // another delivery of this file that continued it from the journal (a
  // duplicate job, a reconcile racing a slow upload: its object is then
  // here, identical), or aborted (a sweep, another attempt's refusal).
  // Either way its record is worthless; only the first leaves nothing to do.
  auto completed_elsewhere = [&](const Status& status, const std::string& upload_id) {
    if (status.ok() || status.error().code != "NoSuchUpload") return false;
    ForgetQuietly(name, upload_id);
    auto existing = client_.HeadObject(key, stop);
    return existing.ok() && existing->has_value() && IsIdentical(**existing, size, sha256_hex);
  };
  // The caller's verification reads an object found here again.
  if (auto recorded = FindResumable(key, name, part_size)) {
    spdlog::info("Resuming multipart upload {} of {}: {} parts stored before", recorded->upload_id,
                 key, recorded->parts.size());
    Status resumed = ContinueMultipart(key, name, *recorded, fd, size, sha256_hex, stop);
    if (resumed.ok() || resumed.error().code != "NoSuchUpload") return resumed;
    if (completed_elsewhere(resumed, recorded->upload_id)) return Ok();
    spdlog::info("Multipart upload {} of {} is gone: starting a new one", recorded->upload_id, key);
  }
  // A new upload, and once more if another party aborted it under us.
  Status status = Ok();
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto upload_id = client_.CreateMultipartUpload(key, {{"sha256", sha256_hex}}, stop);
    if (!upload_id.ok()) return upload_id.error();
    JournaledUpload upload{*upload_id, part_size, {}};
    if (journal_) {
      if (Status begun = journal_->Begin(name, upload.upload_id, part_size); !begun.ok()) {
        spdlog::warn("Cannot record multipart upload {} of {}: {}", upload.upload_id, key,
                     begun.error().message);
      }
    }
    status = ContinueMultipart(key, name, upload, fd, size, sha256_hex, stop);
    if (status.ok() || status.error().code != "NoSuchUpload") return status;
    if (completed_elsewhere(status, upload.upload_id)) return Ok();
    spdlog::info("Multipart upload {} of {} was aborted while it was sent: starting a new one",
                 upload.upload_id, key);
  }
  return status;
}

std::optional<JournaledUpload> S3ObjectStore::FindResumable(const std::string& key,
                                                            const std::string& name,
                                                            uint64_t part_size) {
  if (!journal_) return std::nullopt;
  auto found = journal_->Find(name);
  if (!found.ok()) {
    spdlog::warn("Cannot read the record of a multipart upload of {}: starting a new one ({})", key,
                 found.error().message);
    return std::nullopt;
  }
  if (!found->has_value()) return std::nullopt;
  if ((*found)->part_size != part_size) {
    // Cut with other settings: its parts cannot be reused.
    AbortQuietly(key, (*found)->upload_id);
    ForgetQuietly(name, (*found)->upload_id);
    return std::nullopt;
  }
  return std::move(*found);
}

Status S3ObjectStore::ContinueMultipart(const std::string& key, const std::string& name,
                                        const JournaledUpload& upload, int fd, uint64_t size,
                                        const std::string& sha256_hex,
                                        const std::stop_token& stop) {
  std::vector<CompletedPart> completed;
  Status status = SendParts(key, name, upload, fd, size, sha256_hex, completed, stop);
  if (status.ok()) status = client_.CompleteMultipartUpload(key, upload.upload_id, completed, stop);
  if (status.ok()) {
    ForgetQuietly(name, upload.upload_id);
    return status;
  }
  const Error& error = status.error();
  // An outage or a stop leaves a recorded upload for the next attempt, by
  // any worker; a fault of the file (it does not match, cannot be read), a
  // refusal of the server, or an upload nobody could find again is aborted.
  const bool resumable = journal_ && error.code != "NoSuchUpload" &&
                         (error.kind == ErrorKind::kOutage || error.kind == ErrorKind::kCancelled);
  if (resumable) {
    spdlog::info("Multipart upload {} of {} left for the next attempt: {}", upload.upload_id, key,
                 error.message);
    return status;
  }
  if (error.code != "NoSuchUpload") AbortQuietly(key, upload.upload_id);
  ForgetQuietly(name, upload.upload_id);
  return status;
}

Status S3ObjectStore::SendParts(const std::string& key, const std::string& name,
                                const JournaledUpload& upload, int fd, uint64_t size,
                                const std::string& sha256_hex,
                                std::vector<CompletedPart>& completed,
                                const std::stop_token& stop) {
  const auto& options = client_.options();
  const uint64_t part_size = upload.part_size;
  const size_t parallelism = static_cast<size_t>(std::max(1, options.part_parallelism));
  std::map<int, const JournaledPart*> stored;
  for (const JournaledPart& part : upload.parts) stored[part.part_number] = &part;
  // Declared before the transfers so that they are destroyed after them: a
  // transfer borrows its lease's memory until it ends.
  std::map<int, BufferPool::Lease> leases;
  S3Client::PartTransfers transfers(client_, stop);
  Hasher whole_file;
  uint64_t offset = 0;
  int next_part = 1;
  int reused_parts = 0;
  uint64_t reused_bytes = 0;

  while (offset < size || transfers.in_flight() > 0) {
    if (stop.stop_requested()) return Error::Cancelled("UploadPart " + key + ": stopped");
    while (offset < size && transfers.in_flight() < parallelism) {
      const size_t length = static_cast<size_t>(std::min(part_size, size - offset));
      BufferPool::Lease lease;
      if (transfers.in_flight() == 0) {
        // Holding nothing: safe to wait for memory.
        auto acquired = pool_.Acquire(length, stop);
        if (!acquired.ok()) return acquired.error();
        lease = std::move(acquired).value();
      } else {
        // Holding buffers of parts in flight: never block, keep them moving.
        auto acquired = pool_.TryAcquire(length);
        if (!acquired.ok()) return acquired.error();
        if (!acquired->has_value()) break;
        lease = std::move(**acquired);
      }
      if (Status read = ReadExactly(fd, lease.data(), length, offset, size); !read.ok()) {
        return read;
      }
      whole_file.Update(lease.data(), length);
      offset += length;
      if (offset == size) {
        // The last part goes out (or is reused, and the upload completed)
        // only when the whole file matched.
        std::string got = whole_file.FinishHex();
        if (got != sha256_hex)
          return Error::JobRetryable(HashMismatch(sha256_hex, got)).As(FaultClass::kHashMismatch);
      }
      const int part_number = next_part++;
      if (auto found = stored.find(part_number);
          found != stored.end() && IsStoredPart(*found->second, lease.data(), length)) {
        // The server holds these very bytes as this part: not sent again.
        completed.push_back({part_number, found->second->etag});
        ++reused_parts;
        reused_bytes += length;
        continue;
      }
      HashedPayload hashed = MakePayload(lease.data(), length, options.content_md5);
      transfers.Start(key, upload.upload_id, part_number, hashed.payload);
      leases.emplace(part_number, std::move(lease));
    }
    for (auto& outcome : transfers.Poll(std::chrono::milliseconds(100))) {
      const uint64_t length = leases.at(outcome.part_number).size();
      leases.erase(outcome.part_number);
      if (!outcome.etag.ok()) return outcome.etag.error();
      RecordQuietly(name, upload.upload_id, {outcome.part_number, length, *outcome.etag});
      completed.push_back({outcome.part_number, std::move(outcome.etag).value()});
      if (hooks_.on_part_uploaded) hooks_.on_part_uploaded(outcome.part_number);
    }
  }
  if (reused_parts > 0) {
    spdlog::info("Multipart upload {} of {}: {} parts ({} bytes) already stored, not sent again",
                 upload.upload_id, key, reused_parts, reused_bytes);
    if (hooks_.on_parts_reused) hooks_.on_parts_reused(reused_parts, reused_bytes);
  }
  std::sort(completed.begin(), completed.end(),
            [](const auto& a, const auto& b) { return a.part_number < b.part_number; });
  return Ok();
}

void S3ObjectStore::RecordQuietly(const std::string& name, const std::string& upload_id,
                                  const JournaledPart& part) {
  if (!journal_) return;
  if (Status recorded = journal_->RecordPart(name, upload_id, part); !recorded.ok()) {
    // Only a resumption is lost: the part is sent again if this upload is.
    spdlog::warn("Cannot record part {} of multipart upload {}: {}", part.part_number, upload_id,
                 recorded.error().message);
  }
}

void S3ObjectStore::ForgetQuietly(const std::string& name, const std::string& upload_id) {
  if (!journal_) return;
  if (Status forgotten = journal_->Forget(name, upload_id); !forgotten.ok()) {
    // The record expires on its own; a later attempt that finds it finds
    // the upload gone (NoSuchUpload) and starts a new one.
    spdlog::warn("Cannot remove the record of multipart upload {}: {}", upload_id,
                 forgotten.error().message);
  }
}

void S3ObjectStore::AbortQuietly(const std::string& key, const std::string& upload_id) {
  if (hooks_.on_multipart_aborted) hooks_.on_multipart_aborted(upload_id);
  // Not stoppable: an abort after a stop request is exactly what must happen.
  if (Status aborted = client_.AbortMultipartUpload(key, upload_id); !aborted.ok()) {
    // The upload was never completed, so nothing is visible under key; its
    // parts wait for SweepStaleUploads or the bucket's lifecycle rule.
    spdlog::warn("Cannot abort multipart upload {} of {}: {}", upload_id, key,
                 aborted.error().message);
  }
}

Result<ObjectInfo> S3ObjectStore::Verify(const std::string& key, uint64_t size,
                                         const std::string& sha256_hex, std::stop_token stop) {
  auto head = client_.HeadObject(key, std::move(stop));
  if (!head.ok()) return head.error().Wrap("Verifying upload");
  if (!head->has_value()) {
    return Error::JobRetryable("Verifying upload of " + key + ": object missing after upload")
        .As(FaultClass::kMissingFile);
  }
  ObjectInfo info = **head;
  if (info.size != size) {
    return Error::JobRetryable("Verifying upload of " + key + ": " + SizeMismatch(size, info.size))
        .As(FaultClass::kSizeMismatch);
  }
  if (info.sha256 != sha256_hex) {
    return Error::JobRetryable("Verifying upload of " + key + ": x-amz-meta-sha256 is '" +
                               info.sha256 + "', expected " + sha256_hex)
        .As(FaultClass::kHashMismatch);
  }
  Proven(Proof::kHeadObject);
  return info;
}

Result<int> S3ObjectStore::SweepStaleUploads(const std::string& prefix,
                                             std::chrono::seconds older_than) {
  auto uploads = client_.ListMultipartUploads(prefix);
  if (!uploads.ok()) return uploads.error();
  return AbortStaleUploads(*uploads, older_than);
}

Result<int> S3ObjectStore::AbortStaleUploads(const std::vector<MultipartUploadInfo>& uploads,
                                             std::chrono::seconds older_than) {
  const auto cutoff = std::chrono::system_clock::now() - older_than;
  int aborted = 0;
  for (const MultipartUploadInfo& upload : uploads) {
    if (upload.initiated > cutoff) continue;
    // Old, but still being continued: every part renews its record, so a
    // live record names an upload a worker sent to within the retention.
    // A journal that cannot be read keeps the upload too.
    if (journal_) {
      auto recorded = journal_->Find(JournalName(upload.key));
      if (!recorded.ok() || (recorded->has_value() && (*recorded)->upload_id == upload.upload_id)) {
        continue;
      }
    }
    Status status = client_.AbortMultipartUpload(upload.key, upload.upload_id);
    if (!status.ok()) return status.error();
    ++aborted;
  }
  return aborted;
}

}  // namespace media_sync::s3
