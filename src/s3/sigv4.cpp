#include "s3/sigv4.h"

#include <algorithm>
#include <ctime>

#include "core/hash.h"

namespace media_sync::s3 {
namespace {

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string ToLower(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower;
}

// Header values are trimmed and runs of spaces collapse to one, as the
// SigV4 rules ask (servers do the same before comparing).
std::string CanonicalHeaderValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string UriEncode(std::string_view raw, bool encode_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(raw.size() * 3);
  for (unsigned char c : raw) {
    if (IsUnreserved(c) || (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string CanonicalQueryString(const QueryList& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) {
    encoded.emplace_back(UriEncode(name, true), UriEncode(value, true));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

std::string AmzDate(std::chrono::system_clock::time_point when) {
  std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

SigV4Signer::SigV4Signer(std::string access_key, std::string secret_key, std::string region,
                         std::string service)
    : access_key_(std::move(access_key)),
      secret_key_(std::move(secret_key)),
      region_(std::move(region)),
      service_(std::move(service)) {}

std::string SigV4Signer::SigningKey(const std::string& date) const {
  MutexLock lock(cache_mutex_);
  if (cached_date_ != date) {
    std::string key = HmacSha256Raw("AWS4" + secret_key_, date);
    key = HmacSha256Raw(key, region_);
    key = HmacSha256Raw(key, service_);
    cached_key_ = HmacSha256Raw(key, "aws4_request");
    cached_date_ = date;
  }
  return cached_key_;
}

SignatureParts SigV4Signer::Sign(SigningRequest& request,
                                 std::chrono::system_clock::time_point when) const {
  std::string amz_date;
  for (const auto& [name, value] : request.headers) {
    if (ToLower(name) == "x-amz-date") amz_date = value;
  }
  if (amz_date.empty()) {
    amz_date = AmzDate(when);
    request.headers.emplace_back("x-amz-date", amz_date);
  }
  const std::string date = amz_date.substr(0, 8);

  // Lower-cased names, sorted (stable, so repeated names keep their order and
  // join with commas as the rules ask).
  std::vector<std::pair<std::string, std::string>> canonical;
  canonical.reserve(request.headers.size());
  for (const auto& [name, value] : request.headers) {
    canonical.emplace_back(ToLower(name), CanonicalHeaderValue(value));
  }
  std::stable_sort(canonical.begin(), canonical.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  SignatureParts parts;
  std::string header_block;
  for (size_t i = 0; i < canonical.size(); ++i) {
    if (i > 0 && canonical[i].first == canonical[i - 1].first) {
      header_block.pop_back();  // the '\n' of the previous value
      header_block += "," + canonical[i].second + "\n";
      continue;
    }
    header_block += canonical[i].first + ":" + canonical[i].second + "\n";
    if (!parts.signed_headers.empty()) parts.signed_headers.push_back(';');
    parts.signed_headers += canonical[i].first;
  }

  parts.canonical_request = request.method + "\n" + request.encoded_path + "\n" +
                            CanonicalQueryString(request.query) + "\n" + header_block + "\n" +
                            parts.signed_headers + "\n" + request.payload_sha256_hex;
  const std::string scope = date + "/" + region_ + "/" + service_ + "/aws4_request";
  parts.string_to_sign =
      "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + Sha256Hex(parts.canonical_request);
  parts.signature = ToHex(HmacSha256Raw(SigningKey(date), parts.string_to_sign));
  parts.authorization = "AWS4-HMAC-SHA256 Credential=" + access_key_ + "/" + scope +
                        ", SignedHeaders=" + parts.signed_headers +
                        ", Signature=" + parts.signature;
  return parts;
}

}  // namespace media_sync::s3
