// The strict S3 gateway (tests/support/strict_s3_gateway.js) in front of the
// stack's first s3rver refuses what MinIO and AWS S3 refuse: a wrong
// signature, a body that does not match x-amz-content-sha256, Content-MD5 or
// its x-amz-checksum-* (sent as a header, or as the trailer of an aws-chunked
// body), broken aws-chunked framing or chunk signatures, anonymous and
// unsigned-payload requests. The rest of the suite relies on that: a request
// of ours that passes here carries a correct SigV4 signature and payload
// proof. These tests prove the gateway is strict (each refusal, and what the
// lenient s3rver keeps instead where that matters), and that right requests
// pass it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/hash.h"
#include "s3/s3_client.h"
#include "s3/sigv4.h"
#include "support/local_stack.h"

namespace media_sync::s3 {
namespace {

using media_sync::testing::LocalStack;
using media_sync::testing::RunStatus;
using media_sync::testing::SharedStack;
using media_sync::testing::ShellQuote;
using ::testing::HasSubstr;

constexpr size_t kMiB = size_t{1} << 20;
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

S3Options OptionsFor(const LocalStack& stack, const std::string& endpoint_key = "MINIO_ENDPOINT") {
  S3Options options;
  options.endpoint = stack.Get(endpoint_key);
  options.access_key = stack.Get("MINIO_ACCESS_KEY");
  options.secret_key = stack.Get("MINIO_SECRET_KEY");
  options.bucket = stack.Get("MINIO_BUCKET");
  options.secure = stack.Get("MINIO_SECURE") == "true";
  return options;
}

std::string TestPrefix() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string("it/") + info->test_suite_name() + "." + info->name() + "/";
}

std::string Bytes(size_t size, unsigned seed) {
  std::string bytes(size, '\0');
  uint32_t state = seed * 2654435761u + 1;
  for (char& c : bytes) {
    state = state * 1664525u + 1013904223u;
    c = static_cast<char>(state >> 24);
  }
  return bytes;
}

Payload PayloadOf(const std::string& bytes) {
  Payload payload;
  payload.bytes = std::span<const char>(bytes.data(), bytes.size());
  payload.sha256_hex = Sha256Hex(bytes);
  return payload;
}

// Lines the gateway logged (one per refused request).
std::string GatewayLog() {
  std::ifstream file(SharedStack().StateDir() + "/s3gateway.log");
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// curl's own SigV4 signer (independent of ours): the signature is right, the
// claimed payload hash is whatever the test says. Returns the HTTP status and
// puts the reply body into *body.
std::string CurlSigned(const std::string& method_args, const std::string& key,
                       const std::string& content_sha256, std::string* body) {
  LocalStack& stack = SharedStack();
  const std::string out_file = stack.StateDir() + "/curl-reply.xml";
  std::string status;
  const std::string command = "curl -s -o '" + out_file +
                              "' -w '%{http_code}' --aws-sigv4 'aws:amz:us-east-1:s3' --user '" +
                              stack.Get("MINIO_ACCESS_KEY") + ":" + stack.Get("MINIO_SECRET_KEY") +
                              "' -H 'x-amz-content-sha256: " + content_sha256 + "' " + method_args +
                              " '" + stack.Get("STACK_S3_URL") + "/" + stack.Get("MINIO_BUCKET") +
                              "/" + key + "'";
  EXPECT_EQ(RunStatus(command, &status), 0) << command;
  std::ifstream file(out_file);
  *body = std::string(std::istreambuf_iterator<char>(file), {});
  return status;
}

// ----------------------------------------------------------- raw requests
// Requests built by hand, to send what our client does not (checksum
// headers, aws-chunked bodies, wrong proofs), signed by our SigV4 signer: the
// gateway checks them with the AWS SDK's.

constexpr char kRegion[] = "us-east-1";

struct RawRequest {
  std::string method = "PUT";
  std::string key;  // under the bucket
  QueryList query;
  HeaderList headers;  // signed and sent as they are (x-amz-date, authorization added)
  std::string payload_hash = kEmptySha256;  // x-amz-content-sha256
  std::string body;
};

struct RawReply {
  std::string status;
  std::string headers;  // the reply's header block, names lower-cased
  std::string body;

  std::string Code() const {
    auto from = body.find("<Code>");
    auto to = body.find("</Code>");
    if (from == std::string::npos || to == std::string::npos) return "";
    return body.substr(from + 6, to - from - 6);
  }
  // The value of a reply header ("" when absent).
  std::string Header(const std::string& lower_name) const {
    std::istringstream lines(headers);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind(lower_name + ":", 0) == 0) return Trim(line.substr(lower_name.size() + 1));
    }
    return "";
  }
  static std::string Trim(std::string text) {
    while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.pop_back();
    while (!text.empty() && text.front() == ' ') text.erase(0, 1);
    return text;
  }
};

std::ostream& operator<<(std::ostream& out, const RawReply& reply) {
  return out << reply.status << " " << reply.body;
}

std::string HostOf(const std::string& url) {
  auto start = url.find("://") + 3;
  return url.substr(start, url.find('/', start) - start);
}

// Adds x-amz-content-sha256, x-amz-date and authorization; returns the
// signature parts (the seed of a signed aws-chunked body).
SignatureParts SignRaw(RawRequest& request, const std::string& base_url) {
  LocalStack& stack = SharedStack();
  SigV4Signer signer(stack.Get("MINIO_ACCESS_KEY"), stack.Get("MINIO_SECRET_KEY"), kRegion);
  SigningRequest signing;
  signing.method = request.method;
  signing.encoded_path = UriEncodePath("/" + stack.Get("MINIO_BUCKET") + "/" + request.key);
  signing.query = request.query;
  signing.headers = request.headers;
  signing.headers.emplace_back("host", HostOf(base_url));
  signing.headers.emplace_back("x-amz-content-sha256", request.payload_hash);
  signing.payload_sha256_hex = request.payload_hash;
  SignatureParts parts = signer.Sign(signing, std::chrono::system_clock::now());
  request.headers = signing.headers;
  request.headers.erase(std::remove_if(request.headers.begin(), request.headers.end(),
                                       [](const auto& h) { return h.first == "host"; }),
                        request.headers.end());
  request.headers.emplace_back("authorization", parts.authorization);
  return parts;
}

// Sends a request signed by SignRaw (curl carries the bytes, nothing else).
RawReply SendRaw(const RawRequest& request, const std::string& base_url) {
  LocalStack& stack = SharedStack();
  static int counter = 0;
  const std::string prefix = stack.StateDir() + "/raw-" + std::to_string(++counter);
  std::ofstream(prefix + ".in", std::ios::binary) << request.body;
  std::string command =
      "curl -s --cacert " +
      ShellQuote(stack.Env().count("MINIO_CA_FILE") > 0 ? stack.Get("MINIO_CA_FILE")
                                                        : "/dev/null") +
      " -D " + ShellQuote(prefix + ".headers") + " -o " + ShellQuote(prefix + ".out") +
      " -w '%{http_code}'";
  if (request.method == "HEAD") {
    command += " -I";
  } else {
    command += " -X " + request.method + " --data-binary @" + ShellQuote(prefix + ".in");
  }
  command += " -H 'Content-Type:' -H 'Expect:'";
  for (const auto& [name, value] : request.headers)
    command += " -H " + ShellQuote(name + ": " + value);
  std::string url = base_url + UriEncodePath("/" + stack.Get("MINIO_BUCKET") + "/" + request.key);
  if (!request.query.empty()) url += "?" + CanonicalQueryString(request.query);
  command += " " + ShellQuote(url);
  RawReply reply;
  EXPECT_EQ(RunStatus(command, &reply.status), 0) << command;
  std::ifstream headers(prefix + ".headers");
  for (std::string line; std::getline(headers, line);) {
    auto colon = line.find(':');
    for (size_t i = 0; i < colon && colon != std::string::npos; ++i) {
      line[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(line[i])));
    }
    reply.headers += line + "\n";
  }
  std::ifstream body(prefix + ".out", std::ios::binary);
  reply.body = std::string(std::istreambuf_iterator<char>(body), {});
  return reply;
}

RawReply SignAndSend(RawRequest request, const std::string& base_url = "") {
  const std::string url = base_url.empty() ? SharedStack().Get("STACK_S3_URL") : base_url;
  SignRaw(request, url);
  return SendRaw(request, url);
}

std::string Sha256Base64(const std::string& bytes) { return Base64(Sha256Raw(bytes)); }

std::string FromHex(const std::string& hex) {
  std::string raw;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    raw.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return raw;
}

// A PutObject of `body` with a signed payload hash and the given extra headers.
RawRequest PutWith(const std::string& key, const std::string& body, HeaderList headers) {
  RawRequest request;
  request.key = key;
  request.body = body;
  request.payload_hash = Sha256Hex(body);
  request.headers = std::move(headers);
  return request;
}

bool StoredThroughGateway(const std::string& key) {
  S3Client client(OptionsFor(SharedStack()));
  auto head = client.HeadObject(key);
  EXPECT_TRUE(head.ok()) << head.error().message;
  return head.ok() && head->has_value();
}

// `data` as an unsigned aws-chunked body: chunks of `chunk` bytes, the final
// 0-size chunk, then `trailer` (lines with their CRLFs) and the closing CRLF.
std::string UnsignedChunked(const std::string& data, size_t chunk, const std::string& trailer) {
  std::string out;
  char size[32];
  for (size_t at = 0; at < data.size(); at += chunk) {
    const size_t n = std::min(chunk, data.size() - at);
    std::snprintf(size, sizeof size, "%zx\r\n", n);
    out += size + data.substr(at, n) + "\r\n";
  }
  return out + "0\r\n" + trailer + "\r\n";
}

// The SigV4 streaming signatures, as AWS documents them: each chunk's string
// to sign holds the previous signature and the chunk's SHA-256.
class ChunkSigner {
 public:
  ChunkSigner(const RawRequest& signed_request, const SignatureParts& seed)
      : previous_(seed.signature) {
    for (const auto& [name, value] : signed_request.headers) {
      if (name == "x-amz-date") amz_date_ = value;
    }
    const std::string date = amz_date_.substr(0, 8);
    scope_ = date + "/" + kRegion + "/s3/aws4_request";
    key_ = HmacSha256Raw(
        HmacSha256Raw(
            HmacSha256Raw(HmacSha256Raw("AWS4" + SharedStack().Get("MINIO_SECRET_KEY"), date),
                          kRegion),
            "s3"),
        "aws4_request");
  }
  std::string Chunk(const std::string& data) {
    previous_ =
        ToHex(HmacSha256Raw(key_, "AWS4-HMAC-SHA256-PAYLOAD\n" + amz_date_ + "\n" + scope_ + "\n" +
                                      previous_ + "\n" + kEmptySha256 + "\n" + Sha256Hex(data)));
    return previous_;
  }
  // `lines`: the trailer lines each ending in "\n", as they are signed.
  std::string Trailer(const std::string& lines) {
    return ToHex(HmacSha256Raw(key_, "AWS4-HMAC-SHA256-TRAILER\n" + amz_date_ + "\n" + scope_ +
                                         "\n" + previous_ + "\n" + Sha256Hex(lines)));
  }

 private:
  std::string previous_;
  std::string amz_date_;
  std::string scope_;
  std::string key_;
};

// `data` as a signed aws-chunked body, chunks of `chunk` bytes; with
// `trailer_line` ("x-amz-checksum-sha256:...") a signed trailer follows.
// `tamper` changes one chunk's signature (1-based; 0: none).
std::string SignedChunked(const std::string& data, size_t chunk, ChunkSigner& signer,
                          const std::string& trailer_line = "", int tamper = 0) {
  std::string out;
  char size[32];
  int n = 0;
  for (size_t at = 0;; at += chunk) {
    const std::string piece = data.substr(std::min(at, data.size()), chunk);
    std::string signature = signer.Chunk(piece);
    if (++n == tamper) signature[0] = signature[0] == '0' ? '1' : '0';
    std::snprintf(size, sizeof size, "%zx", piece.size());
    out += std::string(size) + ";chunk-signature=" + signature + "\r\n";
    if (piece.empty()) break;
    out += piece + "\r\n";
  }
  if (!trailer_line.empty()) {
    out += trailer_line + "\r\nx-amz-trailer-signature:" + signer.Trailer(trailer_line + "\n") +
           "\r\n";
  }
  return out + "\r\n";
}

// A PutObject of an aws-chunked body in `mode`, declaring `decoded_length`.
RawRequest ChunkedPut(const std::string& key, const std::string& mode, size_t decoded_length,
                      const std::string& trailer_name = "") {
  RawRequest request;
  request.key = key;
  request.payload_hash = mode;
  request.headers = {{"content-encoding", "aws-chunked"},
                     {"x-amz-decoded-content-length", std::to_string(decoded_length)}};
  if (!trailer_name.empty()) request.headers.emplace_back("x-amz-trailer", trailer_name);
  return request;
}

constexpr char kUnsignedTrailer[] = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
constexpr char kSignedChunks[] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
constexpr char kSignedChunksTrailer[] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";

TEST(StrictGatewayTest, MinioEndpointIsTheGatewayNotS3rver) {
  LocalStack& stack = SharedStack();
  EXPECT_NE(stack.Get("MINIO_ENDPOINT"), stack.Get("STACK_S3_DIRECT_ENDPOINT"));
  EXPECT_NE(stack.Pid("s3gateway"), stack.Pid("s3"));
}

TEST(StrictGatewayTest, WrongSecretIsSignatureDoesNotMatchAndConfiguration) {
  S3Options options = OptionsFor(SharedStack());
  options.secret_key = "wrong-secret-never-printed-5678";
  S3Client client(options);
  const std::string body = "some bytes";
  auto put = client.PutObject(TestPrefix() + "x.bin", PayloadOf(body), {});
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().kind, ErrorKind::kConfiguration) << put.error().message;
  EXPECT_THAT(put.error().message, HasSubstr("SignatureDoesNotMatch"));
  auto get = client.GetObject(TestPrefix() + "x.bin");
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.error().kind, ErrorKind::kConfiguration) << get.error().message;
  for (const std::string& message : {put.error().message, get.error().message}) {
    EXPECT_THAT(message, ::testing::Not(HasSubstr(options.secret_key)));
    EXPECT_THAT(message, ::testing::Not(HasSubstr("Signature=")));
  }

  // Nothing reached s3rver: the key is absent with the right secret too.
  S3Client good(OptionsFor(SharedStack()));
  auto head = good.HeadObject(TestPrefix() + "x.bin");
  ASSERT_TRUE(head.ok()) << head.error().message;
  EXPECT_FALSE(head->has_value());
}

TEST(StrictGatewayTest, UnknownAccessKeyIsInvalidAccessKeyId) {
  S3Options options = OptionsFor(SharedStack());
  options.access_key = "NOBODY";
  S3Client client(options);
  auto get = client.GetObject(TestPrefix() + "x.bin");
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.error().kind, ErrorKind::kConfiguration) << get.error().message;
  EXPECT_THAT(get.error().message, HasSubstr("InvalidAccessKeyId"));
}

TEST(StrictGatewayTest, PutHeadGetAndMultipartPass) {
  S3Client client(OptionsFor(SharedStack()));
  ASSERT_TRUE(client.EnsureBucket().ok());
  const std::string key = TestPrefix() + "single.bin";
  const std::string body = Bytes(100000, 1);
  auto put = client.PutObject(key, PayloadOf(body), {{"sha256", Sha256Hex(body)}});
  ASSERT_TRUE(put.ok()) << put.error().message;
  auto head = client.HeadObject(key);
  ASSERT_TRUE(head.ok()) << head.error().message;
  ASSERT_TRUE(head->has_value());
  EXPECT_EQ((*head)->size, body.size());
  EXPECT_EQ((*head)->sha256, Sha256Hex(body));
  auto whole = client.GetObject(key);
  ASSERT_TRUE(whole.ok()) << whole.error().message;
  EXPECT_EQ(*whole, body);
  auto range = client.GetObject(key, ByteRange{10, 19});
  ASSERT_TRUE(range.ok()) << range.error().message;
  EXPECT_EQ(*range, body.substr(10, 10));

  // An empty body is signed with the empty string's hash.
  auto empty = client.PutObject(TestPrefix() + "empty.bin", PayloadOf(""), {});
  ASSERT_TRUE(empty.ok()) << empty.error().message;

  // Multipart: two parts (the first at S3's 5 MiB minimum), sequential and
  // concurrent uploads, then complete.
  const std::string multi_key = TestPrefix() + "multi.bin";
  const std::string part1 = Bytes(5 * kMiB, 2);
  const std::string part2 = Bytes(123457, 3);
  auto upload_id = client.CreateMultipartUpload(multi_key, {{"sha256", Sha256Hex(part1 + part2)}});
  ASSERT_TRUE(upload_id.ok()) << upload_id.error().message;
  auto etag1 = client.UploadPart(multi_key, *upload_id, 1, PayloadOf(part1));
  ASSERT_TRUE(etag1.ok()) << etag1.error().message;
  std::string etag2;
  {
    S3Client::PartTransfers transfers(client, {});
    Payload payload = PayloadOf(part2);
    transfers.Start(multi_key, *upload_id, 2, payload);
    while (transfers.in_flight() > 0) {
      for (auto& outcome : transfers.Poll(std::chrono::milliseconds(200))) {
        ASSERT_TRUE(outcome.etag.ok()) << outcome.etag.error().message;
        etag2 = *outcome.etag;
      }
    }
  }
  Status completed =
      client.CompleteMultipartUpload(multi_key, *upload_id, {{1, *etag1}, {2, etag2}});
  ASSERT_TRUE(completed.ok()) << completed.error().message;
  auto stored = client.GetObject(multi_key);
  ASSERT_TRUE(stored.ok()) << stored.error().message;
  EXPECT_EQ(Sha256Hex(*stored), Sha256Hex(part1 + part2));

  // ListMultipartUploads passes the gateway too; s3rver 3.7.1 does not
  // implement it, and its 501 NotImplemented comes back unchanged.
  auto listed = client.ListMultipartUploads(TestPrefix());
  if (!listed.ok()) {
    EXPECT_THAT(listed.error().message, HasSubstr("NotImplemented"));
  }
}

TEST(StrictGatewayTest, ContentMd5IsCheckedWhenSent) {
  S3Client client(OptionsFor(SharedStack()));
  const std::string body = Bytes(4096, 4);
  Payload payload = PayloadOf(body);
  Hasher md5(Hasher::Algorithm::kMd5);
  md5.Update(body);
  payload.md5_base64 = Base64(md5.FinishRaw());
  auto good = client.PutObject(TestPrefix() + "md5.bin", payload, {});
  ASSERT_TRUE(good.ok()) << good.error().message;

  Hasher other(Hasher::Algorithm::kMd5);
  other.Update("not the body");
  payload.md5_base64 = Base64(other.FinishRaw());
  auto bad = client.PutObject(TestPrefix() + "bad-md5.bin", payload, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind, ErrorKind::kJobRetryable) << bad.error().message;
  EXPECT_THAT(bad.error().message, HasSubstr("BadDigest"));
  auto head = client.HeadObject(TestPrefix() + "bad-md5.bin");
  ASSERT_TRUE(head.ok()) << head.error().message;
  EXPECT_FALSE(head->has_value()) << "a refused body never reaches s3rver";
}

TEST(StrictGatewayTest, ConditionalPutKeepsAnExistingObjectAsAwsAndMinioDo) {
  S3Client client(OptionsFor(SharedStack()));
  const std::string key = TestPrefix() + "kept.bin";
  const std::string first = Bytes(2048, 5);
  auto created = client.PutObjectIfAbsent(key, PayloadOf(first), {{"sha256", Sha256Hex(first)}});
  ASSERT_TRUE(created.ok()) << created.error().message;
  ASSERT_TRUE(created->has_value()) << "no object yet: stored";

  const std::string second = Bytes(4096, 6);
  auto refused = client.PutObjectIfAbsent(key, PayloadOf(second), {{"sha256", Sha256Hex(second)}});
  ASSERT_TRUE(refused.ok()) << refused.error().message;
  EXPECT_FALSE(refused->has_value()) << "412: the object already there is kept";
  EXPECT_THAT(GatewayLog(), HasSubstr("PreconditionFailed PUT /"));
  auto body = client.GetObject(key);
  ASSERT_TRUE(body.ok()) << body.error().message;
  EXPECT_EQ(*body, first);

  // s3rver alone ignores the condition: that is why the gateway enforces it.
  S3Options direct = OptionsFor(SharedStack(), "STACK_S3_DIRECT_ENDPOINT");
  direct.secure = false;
  S3Client lenient(direct);
  auto overwritten =
      lenient.PutObjectIfAbsent(key, PayloadOf(second), {{"sha256", Sha256Hex(second)}});
  ASSERT_TRUE(overwritten.ok()) << overwritten.error().message;
  EXPECT_TRUE(overwritten->has_value());
  body = client.GetObject(key);
  ASSERT_TRUE(body.ok()) << body.error().message;
  EXPECT_EQ(*body, second);
}

TEST(StrictGatewayTest, BodyNotMatchingItsSignedHashIsRefusedAndNotStored) {
  const std::string key = TestPrefix() + "lying.bin";
  const std::string file = SharedStack().StateDir() + "/lying-body.bin";
  std::ofstream(file) << "the body that is really sent";
  const std::string claimed = Sha256Hex("a different body");
  std::string reply;
  EXPECT_EQ(CurlSigned("-T '" + file + "'", key, claimed, &reply), "400") << reply;
  EXPECT_THAT(reply, HasSubstr("<Code>XAmzContentSHA256Mismatch</Code>"));
  EXPECT_THAT(GatewayLog(), HasSubstr("XAmzContentSHA256Mismatch PUT /"));

  // Nothing under the key, asked both through the gateway and of s3rver directly.
  for (const char* endpoint : {"MINIO_ENDPOINT", "STACK_S3_DIRECT_ENDPOINT"}) {
    S3Options options = OptionsFor(SharedStack(), endpoint);
    if (std::string(endpoint) == "STACK_S3_DIRECT_ENDPOINT") options.secure = false;
    S3Client client(options);
    auto head = client.HeadObject(key);
    ASSERT_TRUE(head.ok()) << endpoint << ": " << head.error().message;
    EXPECT_FALSE(head->has_value()) << endpoint;
  }

  // The same request with the true hash passes: only the hash was wrong.
  EXPECT_EQ(CurlSigned("-T '" + file + "'", key, Sha256Hex("the body that is really sent"), &reply),
            "200")
      << reply;
}

TEST(StrictGatewayTest, UnsignedAndAnonymousRequestsAreRefused) {
  LocalStack& stack = SharedStack();
  const std::string file = stack.StateDir() + "/unsigned-body.bin";
  std::ofstream(file) << "body";
  std::string reply;
  EXPECT_EQ(CurlSigned("-T '" + file + "'", TestPrefix() + "u.bin", "UNSIGNED-PAYLOAD", &reply),
            "400");
  EXPECT_THAT(reply, HasSubstr("<Code>UnsignedPayloadRefused</Code>"));
  // A streaming payload needs its decoded length (then its framing, below).
  EXPECT_EQ(CurlSigned("-T '" + file + "'", TestPrefix() + "s.bin",
                       "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", &reply),
            "411");
  EXPECT_THAT(reply, HasSubstr("<Code>MissingContentLength</Code>"));
  // SigV4a streaming is not verified here: refused, never let through.
  EXPECT_EQ(CurlSigned("-T '" + file + "'", TestPrefix() + "s.bin",
                       "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", &reply),
            "501");
  EXPECT_THAT(reply, HasSubstr("<Code>NotImplemented</Code>"));
  // A correctly signed GET passes (curl's signer agrees with the gateway's).
  EXPECT_EQ(CurlSigned("", "", kEmptySha256, &reply), "200") << reply;

  std::string status;
  ASSERT_EQ(RunStatus("curl -s -k -o /dev/null -w '%{http_code}' '" + stack.Get("STACK_S3_URL") +
                          "/" + stack.Get("MINIO_BUCKET") + "/'",
                      &status),
            0);
  EXPECT_EQ(status, "403") << "anonymous";
}

TEST(StrictGatewayTest, KeysWithReservedAndUnicodeCharactersPass) {
  S3Client client(OptionsFor(SharedStack()));
  const std::string body = Bytes(777, 5);
  for (std::string name : {"a b+c.bin", "100%~tilde.bin", "caf\xC3\xA9/\xE1\x88\xB4.bin",
                           "q=1&r?s#t.bin", "sp  ace/x.bin", "!$'()*,;:@[]"}) {
    const std::string key = TestPrefix() + name;
    auto put = client.PutObject(key, PayloadOf(body), {{"sha256", Sha256Hex(body)}});
    ASSERT_TRUE(put.ok()) << key << ": " << put.error().message;
    auto get = client.GetObject(key);
    ASSERT_TRUE(get.ok()) << key << ": " << get.error().message;
    EXPECT_EQ(*get, body) << key;
    auto uploads = client.ListMultipartUploads(key);  // the key in the query string
    if (!uploads.ok()) {
      EXPECT_THAT(uploads.error().message, HasSubstr("NotImplemented")) << key;
    }
  }
}

TEST(StrictGatewayTest, ChecksumHeaderMustMatchTheBodyAndIsKeptWithTheObject) {
  const std::string key = TestPrefix() + "checked.bin";
  const std::string body = Bytes(50000, 21);
  RawReply put = SignAndSend(PutWith(key, body, {{"x-amz-checksum-sha256", Sha256Base64(body)}}));
  ASSERT_EQ(put.status, "200") << put;
  EXPECT_EQ(put.Header("x-amz-checksum-sha256"), Sha256Base64(body)) << put.headers;
  EXPECT_EQ(put.Header("x-amz-checksum-type"), "FULL_OBJECT") << put.headers;

  // HeadObject and GetObject answer the stored checksum when asked for it,
  // never the gateway's own metadata.
  for (const char* method : {"HEAD", "GET"}) {
    RawRequest asked;
    asked.method = method;
    asked.key = key;
    asked.headers = {{"x-amz-checksum-mode", "ENABLED"}};
    RawReply reply = SignAndSend(asked);
    ASSERT_EQ(reply.status, "200") << method << " " << reply;
    EXPECT_EQ(reply.Header("x-amz-checksum-sha256"), Sha256Base64(body)) << method << reply.headers;
    EXPECT_THAT(reply.headers, ::testing::Not(HasSubstr("strict-gateway"))) << method;
  }
  RawRequest plain_head;
  plain_head.method = "HEAD";
  plain_head.key = key;
  RawReply head = SignAndSend(plain_head);
  ASSERT_EQ(head.status, "200") << head;
  EXPECT_EQ(head.Header("x-amz-checksum-sha256"), "") << "only asked with x-amz-checksum-mode";
  EXPECT_THAT(head.headers, ::testing::Not(HasSubstr("strict-gateway")));

  // A body that does not match is refused, as AWS does, and never stored.
  const std::string other_key = TestPrefix() + "corrupt.bin";
  RawReply bad =
      SignAndSend(PutWith(other_key, body, {{"x-amz-checksum-sha256", Sha256Base64("x")}}));
  EXPECT_EQ(bad.status, "400") << bad;
  EXPECT_EQ(bad.Code(), "BadDigest") << bad;
  EXPECT_THAT(bad.body,
              HasSubstr("The SHA256 you specified did not match the calculated checksum."));
  EXPECT_FALSE(StoredThroughGateway(other_key));

  // s3rver alone keeps it: the server that does not verify.
  RawReply lenient =
      SignAndSend(PutWith(other_key, body, {{"x-amz-checksum-sha256", Sha256Base64("x")}}),
                  "http://" + SharedStack().Get("STACK_S3_DIRECT_ENDPOINT"));
  EXPECT_EQ(lenient.status, "200") << lenient;
}

TEST(StrictGatewayTest, EveryChecksumAlgorithmIsVerified) {
  // The published check values of "123456789" (for the CRCs the catalogue's).
  const std::string body = "123456789";
  const std::vector<std::pair<std::string, std::string>> checks = {
      {"crc32", "cbf43926"},
      {"crc32c", "e3069283"},
      {"crc64nvme", "ae8b14860a799888"},
      {"sha1", "f7c3bc1d808e04732adf679965ccc34ca7ae3441"},
      {"sha256", "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"},
  };
  for (const auto& [algorithm, hex] : checks) {
    const std::string header = "x-amz-checksum-" + algorithm;
    const std::string right = Base64(FromHex(hex));
    RawReply put = SignAndSend(PutWith(TestPrefix() + algorithm, body, {{header, right}}));
    EXPECT_EQ(put.status, "200") << algorithm << ": " << put;
    EXPECT_EQ(put.Header(header), right) << algorithm;

    std::string wrong_raw = FromHex(hex);
    wrong_raw.back() = static_cast<char>(wrong_raw.back() ^ 1);
    RawReply bad = SignAndSend(
        PutWith(TestPrefix() + algorithm + "-bad", body, {{header, Base64(wrong_raw)}}));
    EXPECT_EQ(bad.status, "400") << algorithm << ": " << bad;
    EXPECT_EQ(bad.Code(), "BadDigest") << algorithm << ": " << bad;
    EXPECT_FALSE(StoredThroughGateway(TestPrefix() + algorithm + "-bad")) << algorithm;
  }
}

TEST(StrictGatewayTest, MalformedOrConflictingChecksumHeadersAreRefused) {
  const std::string key = TestPrefix() + "x.bin";
  const std::string body = Bytes(1000, 22);
  struct Case {
    const char* what;
    HeaderList headers;
    const char* code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"not base64",
       {{"x-amz-checksum-sha256", "not*base64"}},
       "InvalidRequest",
       "Value for x-amz-checksum-sha256 header is invalid."},
      {"16 bytes for SHA-256",
       {{"x-amz-checksum-sha256", Base64(std::string(16, 'a'))}},
       "InvalidRequest",
       "Value for x-amz-checksum-sha256 header is invalid."},
      {"two checksums",
       {{"x-amz-checksum-sha256", Sha256Base64(body)}, {"x-amz-checksum-crc32", "AAAAAA=="}},
       "InvalidRequest",
       "Multiple checksum Types are not allowed."},
      {"unknown algorithm",
       {{"x-amz-checksum-md7", "AAAAAA=="}},
       "InvalidRequest",
       "x-amz-checksum- header is invalid"},
      {"sdk algorithm without its value",
       {{"x-amz-checksum-sha256", Sha256Base64(body)}, {"x-amz-sdk-checksum-algorithm", "CRC32"}},
       "InvalidRequest",
       "x-amz-sdk-checksum-algorithm specified"},
      {"the gateway's own metadata",
       {{"x-amz-meta-strict-gateway-checksum-sha256", Sha256Base64("x")}},
       "InvalidArgument",
       "reserved"},
  };
  for (const Case& c : cases) {
    RawReply reply = SignAndSend(PutWith(key, body, c.headers));
    EXPECT_EQ(reply.status, "400") << c.what << ": " << reply;
    EXPECT_EQ(reply.Code(), c.code) << c.what << ": " << reply;
    EXPECT_THAT(reply.body, HasSubstr(c.message)) << c.what;
  }
  EXPECT_FALSE(StoredThroughGateway(key));
}

TEST(StrictGatewayTest, UploadPartChecksumIsVerifiedAndMultipartChecksumsAreRefused) {
  S3Client client(OptionsFor(SharedStack()));
  const std::string key = TestPrefix() + "parts.bin";
  auto upload_id = client.CreateMultipartUpload(key, {});
  ASSERT_TRUE(upload_id.ok()) << upload_id.error().message;
  const std::string part = Bytes(6000, 23);
  RawRequest good = PutWith(key, part, {{"x-amz-checksum-sha256", Sha256Base64(part)}});
  good.query = {{"partNumber", "1"}, {"uploadId", *upload_id}};
  RawReply reply = SignAndSend(good);
  EXPECT_EQ(reply.status, "200") << reply;
  EXPECT_EQ(reply.Header("x-amz-checksum-sha256"), Sha256Base64(part)) << reply.headers;

  RawRequest bad = PutWith(key, part, {{"x-amz-checksum-sha256", Sha256Base64("x")}});
  bad.query = {{"partNumber", "2"}, {"uploadId", *upload_id}};
  reply = SignAndSend(bad);
  EXPECT_EQ(reply.status, "400") << reply;
  EXPECT_EQ(reply.Code(), "BadDigest") << reply;

  // Composite and full-object multipart checksums are not kept: refused, not ignored.
  RawRequest create;
  create.method = "POST";
  create.key = key;
  create.query = {{"uploads", ""}};
  create.headers = {{"x-amz-checksum-algorithm", "SHA256"}};
  reply = SignAndSend(create);
  EXPECT_EQ(reply.status, "501") << reply;
  EXPECT_EQ(reply.Code(), "NotImplemented") << reply;
}

TEST(StrictGatewayTest, TrailingChecksumOfAnUnsignedChunkedBodyIsVerified) {
  const std::string key = TestPrefix() + "trailer.bin";
  const std::string data = Bytes(150000, 24);  // chunks of 64 KiB, 64 KiB and the rest
  const std::string trailer = "x-amz-checksum-sha256:" + Sha256Base64(data) + "\r\n";
  RawRequest put = ChunkedPut(key, kUnsignedTrailer, data.size(), "x-amz-checksum-sha256");
  put.body = UnsignedChunked(data, 65536, trailer);
  RawReply reply = SignAndSend(put);
  ASSERT_EQ(reply.status, "200") << reply;
  EXPECT_EQ(reply.Header("x-amz-checksum-sha256"), Sha256Base64(data)) << reply.headers;
  S3Client client(OptionsFor(SharedStack()));
  auto stored = client.GetObject(key);
  ASSERT_TRUE(stored.ok()) << stored.error().message;
  EXPECT_TRUE(*stored == data) << "s3rver gets the decoded bytes, " << stored->size() << " of them";
  RawRequest head;
  head.method = "HEAD";
  head.key = key;
  head.headers = {{"x-amz-checksum-mode", "ENABLED"}};
  EXPECT_EQ(SignAndSend(head).Header("x-amz-checksum-sha256"), Sha256Base64(data));

  // A trailer that does not match the decoded bytes.
  const std::string bad_key = TestPrefix() + "bad-trailer.bin";
  RawRequest bad = ChunkedPut(bad_key, kUnsignedTrailer, data.size(), "x-amz-checksum-sha256");
  bad.body = UnsignedChunked(data, 65536, "x-amz-checksum-sha256:" + Sha256Base64("x") + "\r\n");
  reply = SignAndSend(bad);
  EXPECT_EQ(reply.status, "400") << reply;
  EXPECT_EQ(reply.Code(), "BadDigest") << reply;
  // The trailer x-amz-trailer names, missing.
  bad.body = UnsignedChunked(data, 65536, "");
  reply = SignAndSend(bad);
  EXPECT_EQ(reply.status, "400") << reply;
  EXPECT_EQ(reply.Code(), "MalformedTrailerError") << reply;
  // A trailer value that is not a SHA-256.
  bad.body = UnsignedChunked(data, 65536, "x-amz-checksum-sha256:abc\r\n");
  reply = SignAndSend(bad);
  EXPECT_EQ(reply.status, "400") << reply;
  EXPECT_EQ(reply.Code(), "InvalidRequest") << reply;
  // No checksum at all: the body would be unproven.
  RawRequest unproven = ChunkedPut(bad_key, kUnsignedTrailer, data.size());
  unproven.body = UnsignedChunked(data, 65536, "");
  reply = SignAndSend(unproven);
  EXPECT_EQ(reply.status, "400") << reply;
  EXPECT_EQ(reply.Code(), "UnsignedPayloadRefused") << reply;
  EXPECT_FALSE(StoredThroughGateway(bad_key));

  // s3rver alone stores the aws-chunked framing itself as the object.
  RawReply lenient = SignAndSend(put, "http://" + SharedStack().Get("STACK_S3_DIRECT_ENDPOINT"));
  ASSERT_EQ(lenient.status, "200") << lenient;
  auto kept = client.GetObject(key);
  ASSERT_TRUE(kept.ok()) << kept.error().message;
  EXPECT_EQ(kept->size(), put.body.size());
}

TEST(StrictGatewayTest, MalformedChunkFramingAndWrongDecodedLengthsAreRefused) {
  const std::string key = TestPrefix() + "framing.bin";
  const std::string data = Bytes(100000, 25);
  const std::string trailer = "x-amz-checksum-sha256:" + Sha256Base64(data) + "\r\n";
  const std::string good = UnsignedChunked(data, 65536, trailer);
  std::string bad_hex = good;
  bad_hex.replace(0, 5, "1000z");
  std::string no_crlf = good;
  no_crlf.replace(7 + 65536, 2, "xx");  // after "10000\r\n" and the first chunk's data
  struct Case {
    const char* what;
    std::string body;
    size_t decoded_length;
    const char* code;
  };
  const std::vector<Case> cases = {
      {"a chunk size that is not hex", bad_hex, data.size(), "IncompleteBody"},
      {"chunk data not followed by CRLF", no_crlf, data.size(), "IncompleteBody"},
      {"no final chunk", good.substr(0, 70000), data.size(), "IncompleteBody"},
      {"a small chunk before the last", UnsignedChunked(data, 4096, trailer), data.size(),
       "InvalidChunkSizeError"},
      {"decoded length one short", good, data.size() - 1, "IncompleteBody"},
      {"decoded length one over", good, data.size() + 1, "IncompleteBody"},
      {"bytes after the end", good + "0\r\n", data.size(), "IncompleteBody"},
  };
  for (const Case& c : cases) {
    RawRequest put = ChunkedPut(key, kUnsignedTrailer, c.decoded_length, "x-amz-checksum-sha256");
    put.body = c.body;
    RawReply reply = SignAndSend(put);
    EXPECT_EQ(reply.status, "400") << c.what << ": " << reply;
    EXPECT_EQ(reply.Code(), c.code) << c.what << ": " << reply;
  }
  // aws-chunked framing under a plain payload hash: the server would keep the framing.
  RawRequest undeclared = ChunkedPut(key, Sha256Hex(good), data.size(), "");
  undeclared.body = good;
  RawReply undeclared_reply = SignAndSend(undeclared);
  EXPECT_EQ(undeclared_reply.status, "400") << undeclared_reply;
  EXPECT_EQ(undeclared_reply.Code(), "InvalidArgument") << undeclared_reply;
  RawRequest no_length = ChunkedPut(key, kUnsignedTrailer, 0, "x-amz-checksum-sha256");
  no_length.headers.erase(no_length.headers.begin() + 1);  // x-amz-decoded-content-length
  no_length.body = good;
  RawReply reply = SignAndSend(no_length);
  EXPECT_EQ(reply.status, "411") << reply;
  EXPECT_EQ(reply.Code(), "MissingContentLength") << reply;
  EXPECT_FALSE(StoredThroughGateway(key));
}

TEST(StrictGatewayTest, SignedChunksAreCheckedAlongTheirChain) {
  const std::string data = Bytes(140000, 26);
  const std::string url = SharedStack().Get("STACK_S3_URL");
  // send(tamper, alter): a signed aws-chunked PutObject; `tamper` breaks one
  // chunk signature (1-based), `alter` changes a byte of data after signing.
  auto send = [&](const std::string& key, int tamper, bool alter) {
    RawRequest put = ChunkedPut(key, kSignedChunks, data.size());
    SignatureParts seed = SignRaw(put, url);
    ChunkSigner signer(put, seed);
    put.body = SignedChunked(data, 65536, signer, "", tamper);
    if (alter) put.body[put.body.size() / 2] ^= 1;
    return SendRaw(put, url);
  };
  const std::string key = TestPrefix() + "signed.bin";
  RawReply reply = send(key, 0, false);
  ASSERT_EQ(reply.status, "200") << reply;
  S3Client client(OptionsFor(SharedStack()));
  auto stored = client.GetObject(key);
  ASSERT_TRUE(stored.ok()) << stored.error().message;
  EXPECT_TRUE(*stored == data);

  const std::string bad_key = TestPrefix() + "bad-signed.bin";
  for (int tamper : {1, 2, 4}) {  // the first, a middle one, the final 0-size chunk's
    reply = send(bad_key, tamper, false);
    EXPECT_EQ(reply.status, "403") << "chunk " << tamper << ": " << reply;
    EXPECT_EQ(reply.Code(), "SignatureDoesNotMatch") << reply;
  }
  reply = send(bad_key, 0, true);
  EXPECT_EQ(reply.status, "403") << "data changed after signing: " << reply;
  EXPECT_EQ(reply.Code(), "SignatureDoesNotMatch") << reply;
  EXPECT_FALSE(StoredThroughGateway(bad_key));
}

TEST(StrictGatewayTest, SignedTrailerIsCheckedAndItsChecksumVerified) {
  const std::string data = Bytes(70000, 27);
  const std::string url = SharedStack().Get("STACK_S3_URL");
  auto send = [&](const std::string& key, const std::string& checksum, bool break_signature) {
    RawRequest put = ChunkedPut(key, kSignedChunksTrailer, data.size(), "x-amz-checksum-sha256");
    SignatureParts seed = SignRaw(put, url);
    ChunkSigner signer(put, seed);
    put.body = SignedChunked(data, 65536, signer, "x-amz-checksum-sha256:" + checksum);
    if (break_signature) {
      auto at = put.body.find("x-amz-trailer-signature:") + 24;
      put.body[at] = put.body[at] == '0' ? '1' : '0';
    }
    return SendRaw(put, url);
  };
  const std::string key = TestPrefix() + "signed-trailer.bin";
  RawReply reply = send(key, Sha256Base64(data), false);
  ASSERT_EQ(reply.status, "200") << reply;
  EXPECT_EQ(reply.Header("x-amz-checksum-sha256"), Sha256Base64(data)) << reply.headers;

  const std::string bad_key = TestPrefix() + "bad-signed-trailer.bin";
  reply = send(bad_key, Sha256Base64(data), true);
  EXPECT_EQ(reply.status, "403") << reply;
  EXPECT_EQ(reply.Code(), "SignatureDoesNotMatch") << reply;
  reply = send(bad_key, Sha256Base64("x"), false);  // signed, but not the data's checksum
  EXPECT_EQ(reply.status, "400") << reply;
  EXPECT_EQ(reply.Code(), "BadDigest") << reply;
  EXPECT_FALSE(StoredThroughGateway(bad_key));
}

// A gateway of the test's own in front of the first s3rver, with options.
class ExtraGateway {
 public:
  explicit ExtraGateway(const std::string& options) {
    LocalStack& stack = SharedStack();
    log_ = stack.StateDir() + "/extra-gateway-" + std::to_string(++count_) + ".log";
    std::string pid;
    RunStatus(
        "node " +
            ShellQuote(media_sync::testing::SourcePath("tests/support/strict_s3_gateway.js")) +
            " --port 0 --upstream " + ShellQuote(stack.Get("STACK_S3_DIRECT_ENDPOINT")) +
            " --modules " +
            ShellQuote(media_sync::testing::SourcePath(".deps/s3gateway/node_modules")) + " " +
            options + " >" + ShellQuote(log_) + " 2>&1 </dev/null & echo $!",
        &pid);
    pid_ = std::stoi(pid);
    media_sync::testing::WaitUntil(
        [&] {
          std::ifstream file(log_);
          std::string line;
          std::getline(file, line);
          auto at = line.find("http://127.0.0.1:");
          if (at == std::string::npos) return false;
          url_ = "http://127.0.0.1:" + line.substr(at + 17, line.find(' ', at) - at - 17);
          return true;
        },
        std::chrono::seconds(20));
  }
  ~ExtraGateway() { kill(pid_, SIGTERM); }
  ExtraGateway(const ExtraGateway&) = delete;
  ExtraGateway& operator=(const ExtraGateway&) = delete;
  const std::string& url() const { return url_; }

 private:
  static inline int count_ = 0;
  int pid_ = 0;
  std::string log_;
  std::string url_;
};

TEST(StrictGatewayTest, UnsignedPayloadsPassOnlyWhenAllowedAndMinioCodesOnRequest) {
  ExtraGateway gateway("--accept-unsigned-payload --dialect minio");
  ASSERT_FALSE(gateway.url().empty()) << "the extra gateway did not start";
  const std::string body = Bytes(3000, 28);
  RawRequest unsigned_put = PutWith(TestPrefix() + "unsigned.bin", body, {});
  unsigned_put.payload_hash = "UNSIGNED-PAYLOAD";
  RawReply reply = SignAndSend(unsigned_put, gateway.url());
  EXPECT_EQ(reply.status, "200") << reply;
  // The shared gateway keeps refusing it.
  reply = SignAndSend(unsigned_put);
  EXPECT_EQ(reply.status, "400") << reply;
  EXPECT_EQ(reply.Code(), "UnsignedPayloadRefused") << reply;

  // An unsigned body is still held to its checksum; MinIO's codes this time.
  unsigned_put.headers = {{"x-amz-checksum-sha256", Sha256Base64("x")}};
  reply = SignAndSend(unsigned_put, gateway.url());
  EXPECT_EQ(reply.status, "400") << reply;
  EXPECT_EQ(reply.Code(), "XAmzContentChecksumMismatch") << reply;
  unsigned_put.headers = {{"x-amz-checksum-sha256", "abc"}};
  reply = SignAndSend(unsigned_put, gateway.url());
  EXPECT_EQ(reply.status, "400") << reply;
  EXPECT_EQ(reply.Code(), "InvalidArgument") << reply;

  // An aws-chunked body without a checksum passes there, decoded.
  const std::string key = TestPrefix() + "unproven-chunked.bin";
  RawRequest chunked = ChunkedPut(key, kUnsignedTrailer, body.size());
  chunked.body = UnsignedChunked(body, 65536, "");
  reply = SignAndSend(chunked, gateway.url());
  EXPECT_EQ(reply.status, "200") << reply;
  S3Client client(OptionsFor(SharedStack()));
  auto stored = client.GetObject(key);
  ASSERT_TRUE(stored.ok()) << stored.error().message;
  EXPECT_TRUE(*stored == body);
}

}  // namespace
}  // namespace media_sync::s3
