// CheckBox: proves a storage box before traffic goes to it (`media-sync
// boxes check`), one step at a time, each with a verdict that names the
// cause of a failure:
//   resolve      the endpoint's host name resolves (getaddrinfo)
//   connect      a TCP connection opens within S3_CONNECT_TIMEOUT_SECONDS
//   tls          with MINIO_SECURE, the TLS handshake and the certificate
//                (MINIO_CA_FILE or the system's CAs)
//   answer       a signed request (ListObjectsV2 of one key) is answered
//                within the timeout: a box that accepts connections and
//                never replies (a hung server) fails here
//   clock        the reply's Date against our clock: S3 refuses requests
//                signed more than 15 minutes off (RequestTimeTooSkewed)
//   credentials  the server took the signature (MINIO_ACCESS_KEY and
//                MINIO_SECRET_KEY)
//   bucket       MINIO_BUCKET exists, or was created (as the first job
//                would create it)
//   write, read, delete
//                a probe object (under .media-sync/check/, never media/)
//                written, read back and verified (size, SHA-256, its
//                x-amz-meta-sha256), deleted and gone
//   payload-hash, checksum
//                what the server verifies itself: a body that does not
//                match its signed SHA-256, and a wrong x-amz-checksum-sha256,
//                refused or stored (S3ObjectStore::DetectVerification, the
//                probe the store makes before it trusts the server's answer
//                alone); stored is a warning, not a failure: the client
//                then keeps wrong bytes out by itself
// A failed step skips the steps that need it. Nothing is left on the box
// but the bucket, when it was created.
//
// Thread-safety: a free function; each call uses its own connections.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "config/s3_options.h"

namespace media_sync::s3 {

struct CheckStep {
  enum class Verdict { kOk, kWarn, kFail, kSkipped };
  std::string name;
  Verdict verdict = Verdict::kOk;
  std::string detail;
};

std::string_view ToString(CheckStep::Verdict verdict);  // "ok", "warn", "FAIL", "skipped"

struct BoxCheckSettings {
  // Longest wait for a reply to one request (a hung box fails `answer`).
  std::chrono::seconds timeout{10};
  bool create_bucket = true;  // create a missing bucket, as the first job would
};

// Runs every step against the box `options` names; `on_step` sees each as
// it ends. Returns them all.
std::vector<CheckStep> CheckBox(const S3Options& options, const BoxCheckSettings& settings,
                                const std::function<void(const CheckStep&)>& on_step = {});

}  // namespace media_sync::s3
