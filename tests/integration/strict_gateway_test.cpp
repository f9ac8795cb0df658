// The strict S3 gateway (tests/support/strict_s3_gateway.js) in front of the
// stack's first s3rver refuses what MinIO and AWS S3 refuse: a wrong
// signature, a body that does not match x-amz-content-sha256 or Content-MD5,
// anonymous and unsigned-payload requests. The rest of the suite relies on
// that: a request of ours that passes here carries a correct SigV4 signature
// and payload hash. These tests prove the gateway is strict, and that our
// client's requests pass it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/hash.h"
#include "s3/s3_client.h"
#include "support/local_stack.h"

namespace media_sync::s3 {
namespace {

using media_sync::testing::LocalStack;
using media_sync::testing::RunStatus;
using media_sync::testing::SharedStack;
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
  EXPECT_EQ(CurlSigned("-T '" + file + "'", TestPrefix() + "s.bin",
                       "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", &reply),
            "400");
  EXPECT_THAT(reply, HasSubstr("<Code>StreamingPayloadRefused</Code>"));
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

}  // namespace
}  // namespace media_sync::s3
