#include "s3/sigv4.h"

#include <gtest/gtest.h>

#include <chrono>

#include "core/hash.h"

namespace media_sync::s3 {
namespace {

// Values from AWS's published Signature Version 4 test suite (service
// "service", region us-east-1, 2015-08-30T12:36:00Z) and from the S3 API
// reference's header-authentication examples (2013-05-24).
constexpr char kSuiteAccessKey[] = "AKIDEXAMPLE";
constexpr char kSuiteSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr char kSuiteDate[] = "20150830T123600Z";
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

SignatureParts SignSuite(const std::string& method, const std::string& raw_path, QueryList query,
                         HeaderList extra_headers = {}) {
  SigV4Signer signer(kSuiteAccessKey, kSuiteSecret, "us-east-1", "service");
  SigningRequest request;
  request.method = method;
  request.encoded_path = UriEncodePath(raw_path);
  request.query = std::move(query);
  request.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kSuiteDate}};
  for (auto& header : extra_headers) request.headers.push_back(std::move(header));
  request.payload_sha256_hex = kEmptySha256;
  return signer.Sign(request, std::chrono::system_clock::now());
}

std::string SuiteAuthorization(const std::string& signed_headers, const std::string& signature) {
  return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
         "SignedHeaders=" +
         signed_headers + ", Signature=" + signature;
}

TEST(SigV4SuiteTest, GetVanilla) {
  SignatureParts parts = SignSuite("GET", "/", {});
  EXPECT_EQ(parts.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\n" +
                std::string(kEmptySha256));
  EXPECT_EQ(parts.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(parts.authorization,
            SuiteAuthorization("host;x-amz-date",
                               "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
}

TEST(SigV4SuiteTest, PostVanilla) {
  EXPECT_EQ(SignSuite("POST", "/", {}).signature,
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST(SigV4SuiteTest, GetVanillaQueryOrderKeyCase) {
  SignatureParts parts = SignSuite("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}});
  EXPECT_NE(parts.canonical_request.find("\nParam1=value1&Param2=value2\n"), std::string::npos);
  EXPECT_EQ(parts.signature, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST(SigV4SuiteTest, GetVanillaQueryUnreserved) {
  const std::string unreserved =
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  EXPECT_EQ(SignSuite("GET", "/", {{unreserved, unreserved}}).signature,
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197");
}

TEST(SigV4SuiteTest, GetVanillaUtf8Query) {
  EXPECT_EQ(SignSuite("GET", "/", {{"\xE1\x88\xB4", "bar"}}).signature,
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04");
}

TEST(SigV4SuiteTest, PostVanillaQueryNonUnreserved) {
  SignatureParts parts = SignSuite("POST", "/", {{"@#$%^", ""}, {"+", "/,?><`\";:\\|][{}"}});
  EXPECT_NE(parts.canonical_request.find(
                "\n%2B=%2F%2C%3F%3E%3C%60%22%3B%3A%5C%7C%5D%5B%7B%7D&%40%23%24%25%5E=\n"),
            std::string::npos)
      << parts.canonical_request;
  EXPECT_EQ(parts.signature, "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e");
}

TEST(SigV4SuiteTest, GetUtf8Path) {
  SignatureParts parts = SignSuite("GET", "/\xE1\x88\xB4", {});
  EXPECT_NE(parts.canonical_request.find("\n/%E1%88%B4\n"), std::string::npos);
  EXPECT_EQ(parts.signature, "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

TEST(SigV4SuiteTest, GetUnreservedPath) {
  EXPECT_EQ(
      SignSuite("GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", {})
          .signature,
      "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f");
}

// The "unnormalized" variants are the S3 rules: the path is encoded once and
// never normalised.
TEST(SigV4SuiteTest, GetSpaceUnnormalized) {
  SignatureParts parts = SignSuite("GET", "/example space/", {});
  EXPECT_NE(parts.canonical_request.find("\n/example%20space/\n"), std::string::npos);
  EXPECT_EQ(parts.signature, "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741");
}

TEST(SigV4SuiteTest, GetSlashUnnormalized) {
  EXPECT_EQ(SignSuite("GET", "//", {}).signature,
            "c88bcd3d312d75078c0cd961d6deae3f4c754924b01669efcfcb439fd5e5b76e");
}

TEST(SigV4SuiteTest, GetSlashesUnnormalized) {
  EXPECT_EQ(SignSuite("GET", "//example//", {}).signature,
            "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5");
}

TEST(SigV4SuiteTest, PostHeaderKeySort) {
  SignatureParts parts = SignSuite("POST", "/", {}, {{"My-Header1", "value1"}});
  EXPECT_EQ(parts.signed_headers, "host;my-header1;x-amz-date");
  EXPECT_EQ(parts.signature, "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c");
}

TEST(SigV4SuiteTest, PostHeaderValueCase) {
  EXPECT_EQ(SignSuite("POST", "/", {}, {{"My-Header1", "VALUE1"}}).signature,
            "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d");
}

TEST(SigV4SuiteTest, GetHeaderValueTrim) {
  SignatureParts parts =
      SignSuite("GET", "/", {}, {{"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}});
  EXPECT_NE(parts.canonical_request.find("my-header1:value1\nmy-header2:\"a b c\"\n"),
            std::string::npos);
  EXPECT_EQ(parts.signature, "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

TEST(SigV4SuiteTest, GetHeaderKeyDuplicate) {
  SignatureParts parts =
      SignSuite("GET", "/", {},
                {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}});
  EXPECT_NE(parts.canonical_request.find("my-header1:value2,value2,value1\n"), std::string::npos);
  EXPECT_EQ(parts.signature, "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");
}

// S3 API reference, "Signature Calculations for the Authorization Header":
// GET /test.txt with a Range header.
constexpr char kS3DocAccessKey[] = "AKIAIOSFODNN7EXAMPLE";
constexpr char kS3DocSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

SigningRequest S3DocRequest(std::string method, std::string raw_path, QueryList query,
                            std::string payload_sha256) {
  SigningRequest request;
  request.method = std::move(method);
  request.encoded_path = UriEncodePath(raw_path);
  request.query = std::move(query);
  request.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                     {"x-amz-date", "20130524T000000Z"},
                     {"x-amz-content-sha256", payload_sha256}};
  request.payload_sha256_hex = std::move(payload_sha256);
  return request;
}

TEST(SigV4S3ExamplesTest, GetObjectWithRange) {
  SigV4Signer signer(kS3DocAccessKey, kS3DocSecret, "us-east-1");
  SigningRequest request = S3DocRequest("GET", "/test.txt", {}, kEmptySha256);
  request.headers.emplace_back("Range", "bytes=0-9");
  SignatureParts parts = signer.Sign(request, std::chrono::system_clock::now());
  EXPECT_EQ(parts.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:" +
                std::string(kEmptySha256) + "\nx-amz-date:20130524T000000Z\n\n" +
                "host;range;x-amz-content-sha256;x-amz-date\n" + kEmptySha256);
  EXPECT_EQ(parts.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(parts.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4S3ExamplesTest, PutObjectWithSpecialCharacterInKey) {
  SigV4Signer signer(kS3DocAccessKey, kS3DocSecret, "us-east-1");
  const std::string body_hash = Sha256Hex("Welcome to Amazon S3.");
  EXPECT_EQ(body_hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  SigningRequest request = S3DocRequest("PUT", "/test$file.text", {}, body_hash);
  request.headers.emplace_back("Date", "Fri, 24 May 2013 00:00:00 GMT");
  request.headers.emplace_back("x-amz-storage-class", "REDUCED_REDUNDANCY");
  SignatureParts parts = signer.Sign(request, std::chrono::system_clock::now());
  EXPECT_EQ(request.encoded_path, "/test%24file.text");
  EXPECT_EQ(parts.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4S3ExamplesTest, GetBucketLifecycleSubresource) {
  SigV4Signer signer(kS3DocAccessKey, kS3DocSecret, "us-east-1");
  SigningRequest request = S3DocRequest("GET", "/", {{"lifecycle", ""}}, kEmptySha256);
  SignatureParts parts = signer.Sign(request, std::chrono::system_clock::now());
  EXPECT_EQ(parts.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4S3ExamplesTest, ListObjects) {
  SigV4Signer signer(kS3DocAccessKey, kS3DocSecret, "us-east-1");
  SigningRequest request =
      S3DocRequest("GET", "/", {{"prefix", "J"}, {"max-keys", "2"}}, kEmptySha256);
  SignatureParts parts = signer.Sign(request, std::chrono::system_clock::now());
  EXPECT_EQ(parts.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4CanonicalTest, ObjectKeysAreEncodedOnceWithSlashesKept) {
  EXPECT_EQ(UriEncodePath("/bucket/media/a b+c%d~e\xC3\xA9.jpg"),
            "/bucket/media/a%20b%2Bc%25d~e%C3%A9.jpg");
  // An already-encoded key is a different key: '%' is encoded again, never
  // passed through.
  EXPECT_EQ(UriEncodePath("/b/%20"), "/b/%2520");
  EXPECT_EQ(UriEncodePath("/b/a=b&c?d#e"), "/b/a%3Db%26c%3Fd%23e");
}

TEST(SigV4CanonicalTest, QueryEncodesSlashesAndSortsByEncodedName) {
  EXPECT_EQ(CanonicalQueryString({{"prefix", "media/ab/"}, {"uploads", ""}}),
            "prefix=media%2Fab%2F&uploads=");
  EXPECT_EQ(CanonicalQueryString({{"uploadId", "x y"}, {"partNumber", "10"}}),
            "partNumber=10&uploadId=x%20y");
  EXPECT_EQ(CanonicalQueryString({{"b", "1"}, {"a", "2"}, {"B", "3"}}), "B=3&a=2&b=1");
}

TEST(SigV4CanonicalTest, AddsDateHeaderWhenMissing) {
  SigV4Signer signer("AK", "SK", "eu-central-1");
  SigningRequest request;
  request.method = "HEAD";
  request.encoded_path = "/b/k";
  request.headers = {{"host", "h:9000"}};
  request.payload_sha256_hex = kEmptySha256;
  // 2015-08-30T12:36:00Z
  auto when = std::chrono::system_clock::time_point(std::chrono::seconds(1440938160));
  SignatureParts parts = signer.Sign(request, when);
  ASSERT_EQ(request.headers.size(), 2u);
  EXPECT_EQ(request.headers[1].second, "20150830T123600Z");
  EXPECT_NE(parts.authorization.find("Credential=AK/20150830/eu-central-1/s3/aws4_request"),
            std::string::npos);
  EXPECT_EQ(parts.authorization.find("SK"), std::string::npos);
}

}  // namespace
}  // namespace media_sync::s3
