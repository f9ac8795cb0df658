// SigV4 canonicalisation and signing over fuzzed requests: nothing crashes,
// the canonical path and query encode every byte outside RFC 3986's
// unreserved set exactly once (the form S3 recomputes; anything else is a
// SignatureDoesNotMatch), and signing is a function of the request alone.
//
// Input: line 1 the method, line 2 the raw object path, line 3 the raw query
// ("name=value&name"), then one header per line ("Name: value"). The whole
// input is also encoded on its own, every byte included.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "s3/sigv4.h"

namespace media_sync::fuzz {
namespace {

constexpr std::string_view kUpperHex = "0123456789ABCDEF";

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// encoded is raw with exactly the bytes outside the kept set as %XX
// (upper-case), and nothing else: decoding gives raw back, byte for byte.
void CheckEncoding(std::string_view raw, std::string_view encoded, bool keep_slash) {
  size_t at = 0;
  for (unsigned char c : raw) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      FUZZ_CHECK(at < encoded.size() && static_cast<unsigned char>(encoded[at]) == c, encoded);
      at += 1;
    } else {
      FUZZ_CHECK(at + 3 <= encoded.size() && encoded[at] == '%', encoded);
      FUZZ_CHECK(encoded[at + 1] == kUpperHex[c >> 4] && encoded[at + 2] == kUpperHex[c & 0xf],
                 encoded);
      at += 3;
    }
  }
  FUZZ_CHECK(at == encoded.size(), encoded);
}

void CheckQuery(const s3::QueryList& query) {
  const std::string canonical = s3::CanonicalQueryString(query);
  if (query.empty()) {
    FUZZ_CHECK(canonical.empty(), canonical);
    return;
  }
  // One "name=value" per parameter: '&' and '=' inside them are encoded.
  std::vector<std::string> pairs;
  size_t start = 0;
  while (true) {
    size_t end = canonical.find('&', start);
    pairs.push_back(canonical.substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  FUZZ_CHECK(pairs.size() == query.size(), canonical);
  FUZZ_CHECK(std::is_sorted(pairs.begin(), pairs.end(),
                            [](const std::string& a, const std::string& b) {
                              std::string_view an(a), bn(b);
                              an = an.substr(0, an.find('='));
                              bn = bn.substr(0, bn.find('='));
                              return an < bn;
                            }),
             canonical);
  for (const std::string& pair : pairs) {
    FUZZ_CHECK(std::count(pair.begin(), pair.end(), '=') == 1, pair);
    FUZZ_CHECK(pair.find('/') == std::string::npos, pair);
  }
}

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsLowerHex(std::string_view text, size_t length) {
  return text.size() == length && text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace
}  // namespace media_sync::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace media_sync;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  fuzz::CheckEncoding(input, s3::UriEncodePath(input), /*keep_slash=*/true);
  fuzz::CheckEncoding(input, s3::UriEncode(input, /*encode_slash=*/true), /*keep_slash=*/false);

  auto lines = fuzz::SplitLines(input);
  s3::SigningRequest request;
  request.method = lines.size() > 0 ? std::string(lines[0]) : "GET";
  std::string_view raw_path = lines.size() > 1 ? lines[1] : "/";
  request.encoded_path = s3::UriEncodePath(raw_path);
  fuzz::CheckEncoding(raw_path, request.encoded_path, /*keep_slash=*/true);
  if (lines.size() > 2 && !lines[2].empty()) {
    for (std::string_view rest = lines[2];;) {
      size_t amp = rest.find('&');
      std::string_view pair = rest.substr(0, amp);
      size_t equals = pair.find('=');
      request.query.emplace_back(
          std::string(pair.substr(0, equals)),
          equals == std::string_view::npos ? std::string() : std::string(pair.substr(equals + 1)));
      if (amp == std::string_view::npos) break;
      rest.remove_prefix(amp + 1);
    }
  }
  fuzz::CheckQuery(request.query);
  request.headers.emplace_back("Host", "s3.example.internal:9000");
  for (size_t i = 3; i < lines.size(); ++i) {
    // Header names come from the client's code, never from a job: only
    // HTTP tokens, as curl would send them. Values are anything.
    size_t colon = lines[i].find(':');
    std::string_view name = lines[i].substr(0, colon);
    if (name.empty() || !std::all_of(name.begin(), name.end(), fuzz::IsTokenChar)) continue;
    request.headers.emplace_back(std::string(name), colon == std::string_view::npos
                                                        ? std::string()
                                                        : std::string(lines[i].substr(colon + 1)));
  }
  request.payload_sha256_hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

  const auto when = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  s3::SigV4Signer signer("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1");
  s3::SigV4Signer twin("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1");
  s3::SigningRequest first = request;
  s3::SigningRequest second = request;
  s3::SigningRequest third = request;
  s3::SignatureParts a = signer.Sign(first, when);
  s3::SignatureParts b = signer.Sign(second, when);  // the cached signing key
  s3::SignatureParts c = twin.Sign(third, when);     // a fresh one
  FUZZ_CHECK(a.canonical_request == b.canonical_request, a.canonical_request);
  FUZZ_CHECK(a.signature == b.signature && a.signature == c.signature, a.canonical_request);
  FUZZ_CHECK(a.authorization == c.authorization, a.authorization);
  FUZZ_CHECK(fuzz::IsLowerHex(a.signature, 64), a.signature);
  FUZZ_CHECK(a.authorization.ends_with(", Signature=" + a.signature), a.authorization);
  // The path is signed exactly as it is sent.
  FUZZ_CHECK(a.canonical_request.starts_with(request.method + "\n" + request.encoded_path + "\n"),
             a.canonical_request);

  // Signed headers: lower-case names, sorted, each once, the date among them.
  std::vector<std::string> names;
  for (size_t start = 0; start <= a.signed_headers.size();) {
    size_t end = a.signed_headers.find(';', start);
    if (end == std::string::npos) end = a.signed_headers.size();
    names.push_back(a.signed_headers.substr(start, end - start));
    start = end + 1;
  }
  FUZZ_CHECK(std::is_sorted(names.begin(), names.end()), a.signed_headers);
  FUZZ_CHECK(std::adjacent_find(names.begin(), names.end()) == names.end(), a.signed_headers);
  FUZZ_CHECK(std::find(names.begin(), names.end(), "x-amz-date") != names.end(), a.signed_headers);
  FUZZ_CHECK(std::find(names.begin(), names.end(), "host") != names.end(), a.signed_headers);
  for (const std::string& name : names) {
    FUZZ_CHECK(std::none_of(name.begin(), name.end(),
                            [](unsigned char ch) { return ch >= 'A' && ch <= 'Z'; }),
               name);
  }
  return 0;
}
