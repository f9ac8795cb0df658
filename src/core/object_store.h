// The pipeline's view of one storage box: an S3 bucket behind one endpoint.
// The real adapter is s3::S3ObjectStore; unit tests use an in-memory double.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <string>

#include "core/result.h"

namespace media_sync {

struct ObjectInfo {
  uint64_t size = 0;
  std::string sha256;  // x-amz-meta-sha256, lowercase hex; empty when the object has none
  std::string etag;
  // Set by ObjectStore::Upload only: an identical object (size and sha256)
  // was already stored under the key, so nothing was written.
  bool already_stored = false;
};

// What a store's calls cost on the wire, counted since it was made.
struct TransportCounts {
  uint64_t requests = 0;        // HTTP requests sent
  uint64_t connections = 0;     // new connections opened (the others reused one)
  uint64_t tls_handshakes = 0;  // TLS handshakes done (a resumed session counts too)
};

// The time the calling thread has spent opening connections for its store
// calls (TCP connect and TLS handshake: a few round trips, once per
// connection), summed since the thread started. Stores add to it; the
// BoxRegistry takes what one upload spent so out of that upload's latency
// sample, so that the connections opened as a box's limit grows do not read
// as the box queueing.
inline std::chrono::nanoseconds& ConnectionSetupOnThisThread() {
  thread_local std::chrono::nanoseconds total{0};
  return total;
}

// Implementations are thread-safe: one store is shared by every job for its box.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Metadata of the object under key, or nullopt when there is none.
  // Errors: kOutage (retry later), kConfiguration (credentials, bucket),
  // kCancelled when `stop` is requested meanwhile.
  virtual Result<std::optional<ObjectInfo>> Stat(const std::string& key, std::stop_token stop) = 0;

  // Makes the object under `key` exactly the `size` bytes read from `fd`
  // (from offset 0), with x-amz-meta-sha256 = sha256_hex, and only if those
  // bytes hash to sha256_hex. On a mismatch nothing becomes the object under
  // key and the error is kJobRetryable. An identical object already stored
  // (same size and sha256) is kept and reported with `already_stored`, once
  // the local bytes were hashed all the same; a different one is replaced.
  // On success the stored object is known to be right: its size and sha256
  // were seen (HeadObject), or the server acknowledged exactly the bytes
  // that were hashed (see s3::S3ObjectStore for what each server proves). A stop request ends the
  // transfer and returns kCancelled; a multipart upload cut by a stop or an
  // outage may be left for the next Upload of key to resume (only parts that
  // match the local bytes are reused), otherwise it is aborted. Does not own fd.
  virtual Result<ObjectInfo> Upload(const std::string& key, int fd, uint64_t size,
                                    const std::string& sha256_hex, std::stop_token stop) = 0;

  // When a byte last moved to or from the server, for any call (steady
  // clock); nullopt when the store keeps no track. Tells a box busy with
  // long transfers from one that hangs.
  virtual std::optional<std::chrono::steady_clock::time_point> LastProgress() const {
    return std::nullopt;
  }
  virtual TransportCounts Transport() const { return {}; }
};

}  // namespace media_sync
