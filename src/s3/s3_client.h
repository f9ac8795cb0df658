// A small S3 client over libcurl: AWS Signature V4 (header form), path-style
// addressing, keep-alive connection reuse, and the calls media-sync needs.
//
// Thread-safety: S3Client is thread-safe; one client per storage box is shared
// by all jobs. It keeps a pool of curl easy handles (each holding its live
// connections), so sequential calls reuse connections and concurrent calls
// each get their own; its handles share one TLS session cache and DNS cache
// (a curl share handle), so a new connection to the box resumes a TLS
// session instead of a full handshake.
//
// Ownership: request bodies are borrowed (std::span) and must stay alive until
// the call returns; PartTransfers borrows them until the part finishes.
//
// Bandwidth: upload bodies (PutObject, PutObjectIfAbsent, PutObjectStream,
// UploadPart) are paced by a BandwidthLimiter, when the client has one, as
// curl takes them; other requests and replies are not. A stop request ends a
// paced transfer as it ends any other (kCancelled).
//
// Errors (see s3_errors.h for the full table): kOutage for transport failures,
// timeouts and 5xx (retry later); kConfiguration for credentials, bucket,
// region, TLS or an unsupported operation (fix the box); kJobRetryable for
// content faults; kCancelled when the stop_token fired mid-transfer. No call
// throws.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

#include "config/s3_options.h"
#include "core/object_store.h"
#include "core/result.h"
#include "s3/sigv4.h"
#include "util/mutex.h"

using CURL = void;  // curl/curl.h stays out of this header
using CURLM = void;
using CURLSH = void;

namespace media_sync::s3 {

class BandwidthLimiter;

// Inclusive byte range, as in "Range: bytes=first-last".
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;
};

struct CompletedPart {
  int part_number = 0;
  std::string etag;
};

struct MultipartUploadInfo {
  std::string key;
  std::string upload_id;
  std::chrono::system_clock::time_point initiated;
};

// Body of a PutObject or UploadPart: borrowed bytes plus their hashes.
struct Payload {
  std::span<const char> bytes;
  std::string sha256_hex;  // hex SHA-256 of bytes: the signed payload hash
  std::string md5_base64;  // sent as Content-MD5 when not empty
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// One object of a ListObjectsV2 page.
struct ListedObject {
  std::string key;
  uint64_t size = 0;
  std::string etag;  // unquoted
  std::chrono::system_clock::time_point last_modified;
};

// One page of ListObjectsV2: keys in ascending order of their UTF-8 bytes
// (S3's order), and where the next page starts.
struct ObjectPage {
  std::vector<ListedObject> objects;
  std::string next_token;  // continuation token; empty on the last page
};

namespace detail {
struct Call;
struct Exchange;
struct EasyDeleter {
  void operator()(CURL* easy) const;
};
struct MultiDeleter {
  void operator()(CURLM* multi) const;
};
struct ShareDeleter {
  void operator()(CURLSH* share) const;
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;
using MultiHandle = std::unique_ptr<CURLM, MultiDeleter>;
using ShareHandle = std::unique_ptr<CURLSH, ShareDeleter>;
// The locks curl asks for around what a share handle holds.
struct ShareLocks;
}  // namespace detail

class S3Client {
 public:
  // Paced by the process-wide BandwidthLimiter when options.bandwidth_limit
  // is not 0 (SYNC_BANDWIDTH_LIMIT, shared by every client of the process).
  explicit S3Client(const S3Options& options);
  // Paced by `limiter` (borrowed: it must outlive the client), or not at all
  // when it is null, whatever options.bandwidth_limit says.
  S3Client(S3Options options, BandwidthLimiter* limiter);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const S3Options& options() const { return options_; }

  // When a byte last moved to or from the server, in any call of this
  // client (steady clock); nullopt before the first.
  std::optional<std::chrono::steady_clock::time_point> LastProgress() const;
  // Requests, new connections and TLS handshakes of every call so far.
  TransportCounts Transport() const;

  // Object metadata, or nullopt when the key does not exist (404).
  Result<std::optional<ObjectInfo>> HeadObject(const std::string& key, std::stop_token stop = {});
  // Whole object, or the given inclusive range, into memory. A missing key is
  // kJobRetryable (NoSuchKey).
  Result<std::string> GetObject(const std::string& key, std::optional<ByteRange> range = {},
                                std::stop_token stop = {});
  // GetObject whose body is handed to `sink` piece by piece as it arrives
  // (at most curl's receive buffer in memory); `sink` returns false to end
  // the transfer (kCancelled). The reply (status, headers; no body), or
  // nullopt when the key does not exist (404). Asks for the object's stored
  // checksum (x-amz-checksum-mode: ENABLED). Paced by the client's
  // BandwidthLimiter, like upload bodies, so that reading objects back takes
  // from the same cap.
  using BodySink = std::function<bool(const char* data, size_t size)>;
  Result<std::optional<HttpResponse>> GetObjectStreamed(const std::string& key,
                                                        const BodySink& sink,
                                                        const std::stop_token& stop = {});
  // One page of ListObjectsV2 (list-type=2) over the keys under `prefix`:
  // the first page after `start_after` when `continuation_token` is empty,
  // else the page the token names. At most max_keys (1..1000) objects.
  Result<ObjectPage> ListObjectsV2(const std::string& prefix, const std::string& start_after,
                                   const std::string& continuation_token, int max_keys = 1000,
                                   std::stop_token stop = {});
  // Stores payload under key with x-amz-meta-* headers from metadata
  // ("sha256" -> x-amz-meta-sha256). Returns the ETag.
  Result<std::string> PutObject(const std::string& key, const Payload& payload,
                                const std::map<std::string, std::string>& metadata,
                                std::stop_token stop = {});
  // PutObject with If-None-Match: *, which stores payload only where key
  // holds no object yet. The ETag, or nullopt when the server kept the object
  // already under key (412 PreconditionFailed; 409 ConditionalRequestConflict:
  // another conditional write of key is in flight). Servers that ignore the
  // condition (s3rver) store payload as PutObject does.
  Result<std::optional<std::string>> PutObjectIfAbsent(
      const std::string& key, const Payload& payload,
      const std::map<std::string, std::string>& metadata, std::stop_token stop = {});
  // PutObject whose body is read on demand: `read(buffer, capacity, offset)`
  // fills up to capacity bytes taken from `offset` of the body and returns
  // how many, or -1 to abort the request (the connection is dropped, the
  // server sees a short body, and the call fails with kOutage unless stop was
  // requested). Offsets grow, except a rewind to 0 when curl resends the
  // request on a fresh connection. The request is signed with
  // payload_sha256_hex, which the caller vouches for. Memory: curl's own
  // upload buffer only.
  using BodyReader = std::function<long(char* buffer, size_t capacity, uint64_t offset)>;
  Result<std::string> PutObjectStream(const std::string& key, uint64_t size,
                                      const std::string& payload_sha256_hex,
                                      const std::string& md5_base64, BodyReader read,
                                      const std::map<std::string, std::string>& metadata,
                                      std::stop_token stop = {});
  // PutObjectStream for a server that proves what it stored (it refuses a
  // body whose SHA-256 differs from the signed payload hash, or from
  // x-amz-checksum-sha256, sent when `checksum_sha256_base64` is not empty),
  // with If-None-Match: * as PutObjectIfAbsent: the ETag, or nullopt when
  // the server kept an object already under key.
  Result<std::optional<std::string>> PutObjectStreamIfAbsent(
      const std::string& key, uint64_t size, const std::string& payload_sha256_hex,
      const std::string& checksum_sha256_base64, BodyReader read,
      const std::map<std::string, std::string>& metadata, std::stop_token stop = {});
  // For finding out what a server verifies: a PutObject of `body` signed
  // with `signed_payload_sha256_hex` (wrong on purpose, or not) and the
  // extra headers. The server's answer whatever its status; transport
  // failures are errors.
  Result<HttpResponse> ProbePut(const std::string& key, std::span<const char> body,
                                const std::string& signed_payload_sha256_hex,
                                const HeaderList& extra_headers, std::stop_token stop = {});
  Status DeleteObject(const std::string& key, std::stop_token stop = {});
  // DeleteObject with If-Match: the ETag HeadObject reported. true when the
  // key is gone (deleted, or absent already), false when the server refused
  // because the key now holds another object (412 PreconditionFailed).
  // Servers that ignore If-Match (s3rver) delete whatever is there.
  Result<bool> DeleteObjectIfMatch(const std::string& key, const std::string& etag,
                                   std::stop_token stop = {});

  // Returns the upload id.
  Result<std::string> CreateMultipartUpload(const std::string& key,
                                            const std::map<std::string, std::string>& metadata,
                                            std::stop_token stop = {});
  // Returns the part's ETag.
  Result<std::string> UploadPart(const std::string& key, const std::string& upload_id,
                                 int part_number, const Payload& payload,
                                 std::stop_token stop = {});
  // Parts in ascending part_number. A 200 reply carrying an <Error> document
  // is an error, as the S3 reference warns.
  Status CompleteMultipartUpload(const std::string& key, const std::string& upload_id,
                                 const std::vector<CompletedPart>& parts,
                                 std::stop_token stop = {});
  Status AbortMultipartUpload(const std::string& key, const std::string& upload_id,
                              std::stop_token stop = {});
  // All in-progress uploads whose key starts with prefix (follows pagination).
  Result<std::vector<MultipartUploadInfo>> ListMultipartUploads(const std::string& prefix,
                                                                const std::stop_token& stop = {});

  // true when the bucket exists and is ours, false on 404.
  Result<bool> HeadBucket(std::stop_token stop = {});
  Status CreateBucket(std::stop_token stop = {});
  // HeadBucket, and CreateBucket when missing. A CreateBucket refused because
  // the bucket exists (another worker made it since the HeadBucket) is Ok
  // once a second HeadBucket finds it. A bucket that is missing and cannot
  // be created is kConfiguration.
  Status EnsureBucket(const std::stop_token& stop = {});

  // One signed request worded by the caller, for diagnostics (`boxes
  // check`): the reply whatever its status (an error status is not an
  // Error), or the transport's failure. `payload_sha256` is signed as the
  // body's hash (computed when empty): a wrong one asks whether the server
  // checks it. Never paced.
  struct RawRequest {
    std::string method = "GET";
    std::string key;  // "" for a bucket call
    QueryList query;
    HeaderList headers;  // extra headers, all signed
    std::span<const char> body;
    std::string payload_sha256;
  };
  Result<HttpResponse> Send(const RawRequest& request, const std::stop_token& stop = {});

  // Several UploadPart requests driven concurrently by one curl multi handle
  // in the calling thread (no extra threads). Not thread-safe: one user.
  class PartTransfers {
   public:
    struct Outcome {
      int part_number = 0;
      Result<std::string> etag;  // ETag, or the part's error
    };

    PartTransfers(S3Client& client, std::stop_token stop);
    ~PartTransfers();  // cancels whatever is still running
    PartTransfers(const PartTransfers&) = delete;
    PartTransfers& operator=(const PartTransfers&) = delete;

    // Starts sending one part; payload.bytes must stay alive until its
    // Outcome is returned by Poll (or this object is destroyed).
    void Start(const std::string& key, const std::string& upload_id, int part_number,
               const Payload& payload);
    size_t in_flight() const { return running_.size(); }
    // Drives the transfers for at most max_wait and returns those that ended.
    std::vector<Outcome> Poll(std::chrono::milliseconds max_wait);

   private:
    S3Client& client_;
    std::stop_token stop_;
    detail::MultiHandle multi_;
    std::map<CURL*, std::unique_ptr<detail::Exchange>> running_;
    std::map<CURL*, int> part_numbers_;
  };

 private:
  std::unique_ptr<detail::Exchange> Prepare(detail::Call call, std::stop_token stop);
  Result<HttpResponse> Finish(detail::Exchange& exchange, int curl_code);
  Result<HttpResponse> Execute(detail::Call call, std::stop_token stop);
  Status CheckStatus(const detail::Call& call, const HttpResponse& response) const;
  detail::EasyHandle TakeHandle();
  void ReturnHandle(detail::EasyHandle handle);

  const S3Options options_;
  const std::string host_;      // "host:port" as sent and signed
  const std::string base_url_;  // "http://host:port"
  const SigV4Signer signer_;
  BandwidthLimiter* const limiter_;           // null: uploads are not paced
  std::atomic<int64_t> last_progress_ns_{0};  // steady clock; 0: never
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> tls_handshakes_{0};

  // Declared before the handles that use it, so destroyed after them.
  std::unique_ptr<detail::ShareLocks> share_locks_;
  detail::ShareHandle share_;
  Mutex pool_mutex_;
  std::vector<detail::EasyHandle> idle_handles_ GUARDED_BY(pool_mutex_);
};

}  // namespace media_sync::s3
