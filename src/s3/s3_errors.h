// S3 error bodies and their classification into the project's ErrorKind.
//
//   kOutage         transport failures (refused, reset, timeout, DNS), HTTP
//                   5xx, 429, 408, SlowDown, RequestTimeout, and a 400 that
//                   carries no S3 error code (a proxy's error page, a HEAD
//                   reply without a body): retry later, the job is not to
//                   blame.
//   kConfiguration  401/403 (InvalidAccessKeyId, SignatureDoesNotMatch,
//                   AccessDenied, RequestTimeTooSkewed), NoSuchBucket, wrong
//                   region, a server lacking an operation (NotImplemented,
//                   MethodNotAllowed), TLS certificate problems: the box is
//                   unusable until an operator acts.
//   kJobRetryable   content faults (XAmzContentSHA256Mismatch, BadDigest,
//                   InvalidDigest, IncompleteBody, InvalidPart, NoSuchUpload,
//                   ...) and 400s with an S3 error code not listed here: the
//                   job's fault after a bounded number of retries.
//   kJobPermanent   EntityTooLarge, KeyTooLongError: no retry can help.
//
// Messages quote the operation, key, HTTP status and the S3 Code, Message and
// RequestId. They never contain request headers, so neither the signature nor
// the secret key can leak through them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace media_sync::s3 {

// Text of the first <tag>...</tag> in xml at or after *from (entities
// decoded); advances *from past it. A minimal extractor for the flat
// documents S3 returns; no attributes, namespaces or CDATA are interpreted.
std::optional<std::string> XmlTagText(std::string_view xml, std::string_view tag,
                                      size_t* from = nullptr);
// Raw inner text of every <tag>...</tag>, in document order (not decoded, so
// callers can run XmlTagText over each block).
std::vector<std::string_view> XmlElements(std::string_view xml, std::string_view tag);
std::string XmlEscape(std::string_view text);

struct S3ErrorBody {
  std::string code;
  std::string message;
  std::string request_id;
};

S3ErrorBody ParseS3ErrorBody(std::string_view xml);

// Error for an HTTP reply with a non-success status. `operation` names the
// S3 call ("PutObject"), `key` the object ("" for bucket calls).
Error ClassifyHttpError(long status, std::string_view body, std::string_view operation,
                        std::string_view key);

// Error kind for an S3 error Code at an HTTP status (exposed for tests).
ErrorKind KindForS3Error(long status, std::string_view code);

// True when the server answered that it lacks the operation
// (NotImplemented, MethodNotAllowed: s3rver lists no multipart uploads, for
// one), judged by the error's S3 code, never by its message.
bool IsUnsupportedOperation(const Error& error);

}  // namespace media_sync::s3
