#include "s3/s3_errors.h"

#include <array>

namespace media_sync::s3 {
namespace {

std::string DecodeEntities(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, char>, 5> kEntities{{
      {"&amp;", '&'},
      {"&lt;", '<'},
      {"&gt;", '>'},
      {"&quot;", '"'},
      {"&apos;", '\''},
  }};
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    bool replaced = false;
    if (text[i] == '&') {
      for (const auto& [entity, c] : kEntities) {
        if (text.substr(i, entity.size()) == entity) {
          out.push_back(c);
          i += entity.size();
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out.push_back(text[i++]);
  }
  return out;
}

// Finds "<tag>" or "<tag " (start tag with attributes) at or after from.
std::optional<std::pair<size_t, size_t>> FindElement(std::string_view xml, std::string_view tag,
                                                     size_t from) {
  std::string open("<");
  open.append(tag);
  std::string close("</");
  close.append(tag).push_back('>');
  while (true) {
    size_t start = xml.find(open, from);
    if (start == std::string_view::npos) return std::nullopt;
    size_t after = start + open.size();
    if (after < xml.size() && (xml[after] == '>' || xml[after] == ' ' || xml[after] == '/')) {
      size_t content = xml.find('>', after);
      if (content == std::string_view::npos) return std::nullopt;
      if (xml[content - 1] == '/') return std::make_pair(content + 1, content + 1);  // <tag/>
      size_t end = xml.find(close, content + 1);
      if (end == std::string_view::npos) return std::nullopt;
      return std::make_pair(content + 1, end);
    }
    from = after;
  }
}

bool OneOf(std::string_view code, std::initializer_list<std::string_view> codes) {
  for (std::string_view candidate : codes) {
    if (code == candidate) return true;
  }
  return false;
}

// The codes of a server that lacks the operation asked for.
bool NamesUnsupportedOperation(std::string_view code) {
  return OneOf(code, {"NotImplemented", "MethodNotAllowed"});
}

}  // namespace

std::optional<std::string> XmlTagText(std::string_view xml, std::string_view tag, size_t* from) {
  auto range = FindElement(xml, tag, from != nullptr ? *from : 0);
  if (!range) return std::nullopt;
  if (from != nullptr) *from = range->second;
  return DecodeEntities(xml.substr(range->first, range->second - range->first));
}

std::vector<std::string_view> XmlElements(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> elements;
  size_t from = 0;
  while (auto range = FindElement(xml, tag, from)) {
    elements.push_back(xml.substr(range->first, range->second - range->first));
    from = range->second;
  }
  return elements;
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

S3ErrorBody ParseS3ErrorBody(std::string_view xml) {
  S3ErrorBody error;
  // Only the <Error> element counts: a CompleteMultipartUpload reply can be
  // an error document with status 200.
  auto blocks = XmlElements(xml, "Error");
  std::string_view scope = blocks.empty() ? xml : blocks.front();
  error.code = XmlTagText(scope, "Code").value_or("");
  error.message = XmlTagText(scope, "Message").value_or("");
  error.request_id = XmlTagText(scope, "RequestId").value_or("");
  return error;
}

ErrorKind KindForS3Error(long status, std::string_view code) {
  if (OneOf(code, {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError",
                   "OperationAborted"})) {
    return ErrorKind::kOutage;
  }
  if (OneOf(code, {"XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch", "BadDigest",
                   "InvalidDigest", "IncompleteBody", "InvalidPart", "InvalidPartOrder",
                   "NoSuchUpload", "EntityTooSmall", "NoSuchKey"})) {
    return ErrorKind::kJobRetryable;
  }
  if (OneOf(code, {"EntityTooLarge", "KeyTooLongError"})) return ErrorKind::kJobPermanent;
  if (OneOf(code, {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                   "RequestTimeTooSkewed", "NoSuchBucket", "AuthorizationHeaderMalformed",
                   "PermanentRedirect", "InvalidBucketName", "AccountProblem", "InvalidRegion"}) ||
      NamesUnsupportedOperation(code)) {
    return ErrorKind::kConfiguration;
  }
  if (status >= 500 || status == 429 || status == 408) return ErrorKind::kOutage;
  if (status == 400) {
    // An S3 error code blames the request, and a job-specific cause must not
    // make the box look down (its jobs would keep probing it): the job's
    // retries. No code at all is a proxy's error page or a server in
    // trouble, nothing the job did: wait, without burning its retries.
    return code.empty() ? ErrorKind::kOutage : ErrorKind::kJobRetryable;
  }
  return ErrorKind::kConfiguration;
}

bool IsUnsupportedOperation(const Error& error) { return NamesUnsupportedOperation(error.code); }

Error ClassifyHttpError(long status, std::string_view body, std::string_view operation,
                        std::string_view key) {
  S3ErrorBody parsed = ParseS3ErrorBody(body);
  std::string text(operation);
  if (!key.empty()) text.append(" ").append(key);
  text.append(": HTTP ").append(std::to_string(status));
  if (!parsed.code.empty()) text.append(" ").append(parsed.code);
  if (!parsed.message.empty()) text.append(": ").append(parsed.message);
  if (parsed.code.empty() && (status == 401 || status == 403)) {
    text += " (no error body; check the access key, the secret key and the clock)";
  }
  if (!parsed.request_id.empty()) text.append(" (RequestId ").append(parsed.request_id).append(")");
  FaultClass fault = OneOf(parsed.code, {"XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch",
                                         "BadDigest", "InvalidDigest"})
                         ? FaultClass::kHashMismatch
                     : OneOf(parsed.code, {"IncompleteBody", "EntityTooSmall"})
                         ? FaultClass::kSizeMismatch
                         : FaultClass::kOther;
  return Error{KindForS3Error(status, parsed.code), std::move(text), fault, parsed.code};
}

}  // namespace media_sync::s3
