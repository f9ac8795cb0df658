// AWS Signature Version 4, header form (the "Authorization: AWS4-HMAC-SHA256"
// header), as S3 and S3-compatible servers (MinIO, Ceph RGW, s3rver) accept it.
//
// S3 differs from the generic SigV4 rules in one point that matters here: the
// canonical URI is the request path encoded exactly once and never normalised
// ("//" and "/./" stay as they are). Callers build the wire path with
// UriEncodePath() and hand that same string to the signer, so what is signed is
// what is sent.
//
// Thread-safety: SigV4Signer is immutable after construction except for a
// per-day signing-key cache guarded by a mutex; one signer may be shared by all
// threads of a client. The free functions are pure.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/mutex.h"

namespace media_sync::s3 {

// RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) stay, every other byte
// becomes %XX (upper-case hex). '/' is kept when encode_slash is false (object
// key paths) and encoded otherwise (query names and values).
std::string UriEncode(std::string_view raw, bool encode_slash);
// A path ("/bucket/key with spaces") encoded for both the wire and the
// canonical request: '/' kept, everything else as UriEncode.
inline std::string UriEncodePath(std::string_view raw_path) { return UriEncode(raw_path, false); }

using HeaderList = std::vector<std::pair<std::string, std::string>>;
using QueryList = std::vector<std::pair<std::string, std::string>>;  // raw, unencoded

// One request as the signer sees it.
struct SigningRequest {
  std::string method;              // "GET", "PUT", ...
  std::string encoded_path;        // as sent on the wire, from UriEncodePath
  QueryList query;                 // raw names and values; encoded by the signer
  HeaderList headers;              // must contain "host"; names in any case
  std::string payload_sha256_hex;  // hex SHA-256 of the body ("e3b0..." when empty)
};

// "Param1=value1&Param2=value2": encoded, sorted by name then value. Also the
// wire query string, so the server sees exactly the signed form.
std::string CanonicalQueryString(const QueryList& query);

// The pieces of a signature, exposed for tests and for diagnostics (none of
// them contains the secret; the signature itself is never logged).
struct SignatureParts {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-content-sha256;x-amz-date"
  std::string signature;       // hex
  std::string authorization;   // full Authorization header value
};

// "20150830T123600Z" for a point in time (UTC).
std::string AmzDate(std::chrono::system_clock::time_point when);

class SigV4Signer {
 public:
  SigV4Signer(std::string access_key, std::string secret_key, std::string region,
              std::string service = "s3");

  // Signs `request` at time `when`. Adds the "x-amz-date" header to
  // request.headers unless one is there, and returns the parts; the caller
  // sends SignatureParts::authorization as the Authorization header.
  SignatureParts Sign(SigningRequest& request, std::chrono::system_clock::time_point when) const;

  const std::string& access_key() const { return access_key_; }
  const std::string& region() const { return region_; }

 private:
  std::string SigningKey(const std::string& date) const;

  std::string access_key_;
  std::string secret_key_;
  std::string region_;
  std::string service_;
  mutable Mutex cache_mutex_;
  mutable std::string cached_date_ GUARDED_BY(cache_mutex_);
  mutable std::string cached_key_ GUARDED_BY(cache_mutex_);
};

}  // namespace media_sync::s3
