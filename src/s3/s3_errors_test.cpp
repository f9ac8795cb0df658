#include "s3/s3_errors.h"

#include <gtest/gtest.h>

namespace media_sync::s3 {
namespace {

// The example error document of the S3 API reference ("Error responses").
constexpr char kNoSuchKeyBody[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The resource you requested does not exist</Message>
  <Resource>/mybucket/myfoto.jpg</Resource>
  <RequestId>4442587FB7D0A2F9</RequestId>
</Error>)";

// A SignatureDoesNotMatch reply in AWS's shape: it echoes the string to sign
// and the signature provided, which must never reach a message.
constexpr char kSignatureMismatchBody[] =
    R"(<?xml version="1.0" encoding="UTF-8"?>)"
    "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does "
    "not match the signature you provided. Check your key and signing method.</Message>"
    "<AWSAccessKeyId>AKIAIOSFODNN7EXAMPLE</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256\n"
    "20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
    "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972</StringToSign>"
    "<SignatureProvided>f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    "</SignatureProvided><RequestId>3A9B1D6E2C4F5A7B</RequestId>"
    "<HostId>nTAvWtoBw9Y2n1lJ2q3Zc0mGcT8=</HostId></Error>";

TEST(S3ErrorsTest, ParsesTheDocumentedErrorBody) {
  S3ErrorBody error = ParseS3ErrorBody(kNoSuchKeyBody);
  EXPECT_EQ(error.code, "NoSuchKey");
  EXPECT_EQ(error.message, "The resource you requested does not exist");
  EXPECT_EQ(error.request_id, "4442587FB7D0A2F9");
}

TEST(S3ErrorsTest, MessageQuotesCodeMessageRequestIdOperationAndKey) {
  Error error = ClassifyHttpError(404, kNoSuchKeyBody, "GetObject", "media/ab/cd/x.jpg");
  EXPECT_EQ(error.message,
            "GetObject media/ab/cd/x.jpg: HTTP 404 NoSuchKey: The resource you requested does not "
            "exist (RequestId 4442587FB7D0A2F9)");
  EXPECT_EQ(error.kind, ErrorKind::kJobRetryable);
}

TEST(S3ErrorsTest, SignatureMismatchIsConfigurationAndNeverQuotesTheSignature) {
  Error error = ClassifyHttpError(403, kSignatureMismatchBody, "PutObject", "k");
  EXPECT_EQ(error.kind, ErrorKind::kConfiguration);
  EXPECT_NE(error.message.find("SignatureDoesNotMatch"), std::string::npos);
  EXPECT_NE(error.message.find("RequestId 3A9B1D6E2C4F5A7B"), std::string::npos);
  EXPECT_EQ(error.message.find("f0e8bdb87c96"), std::string::npos) << error.message;
  EXPECT_EQ(error.message.find("AWS4-HMAC-SHA256"), std::string::npos) << error.message;
}

TEST(S3ErrorsTest, ClassifiesRecordedBodies) {
  struct Case {
    long status;
    const char* body;
    ErrorKind kind;
  };
  const Case cases[] = {
      {503,
       "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
       "<RequestId>1</RequestId></Error>",
       ErrorKind::kOutage},
      {500,
       "<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try "
       "again.</Message></Error>",
       ErrorKind::kOutage},
      {400,
       "<Error><Code>RequestTimeout</Code><Message>Your socket connection to the server was not "
       "read from or written to within the timeout period.</Message></Error>",
       ErrorKind::kOutage},
      {403,
       "<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does "
       "not exist in our records.</Message></Error>",
       ErrorKind::kConfiguration},
      {403, "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
       ErrorKind::kConfiguration},
      {404,
       "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>"
       "<BucketName>osint-media</BucketName></Error>",
       ErrorKind::kConfiguration},
      {400,
       "<Error><Code>XAmzContentSHA256Mismatch</Code><Message>The provided "
       "'x-amz-content-sha256' header does not match what was computed.</Message>"
       "<ClientComputedContentSHA256>aa</ClientComputedContentSHA256>"
       "<S3ComputedContentSHA256>bb</S3ComputedContentSHA256></Error>",
       ErrorKind::kJobRetryable},
      {400,
       "<Error><Code>BadDigest</Code><Message>The Content-MD5 you specified did not match what "
       "we received.</Message></Error>",
       ErrorKind::kJobRetryable},
      {404,
       "<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message>"
       "</Error>",
       ErrorKind::kJobRetryable},
      {400,
       "<Error><Code>EntityTooLarge</Code><Message>Your proposed upload exceeds the maximum "
       "allowed object size.</Message></Error>",
       ErrorKind::kJobPermanent},
      {501,
       "<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality "
       "that is not implemented</Message></Error>",
       ErrorKind::kConfiguration},
      {502, "<html>Bad Gateway</html>", ErrorKind::kOutage},
      {403, "", ErrorKind::kConfiguration},  // HEAD replies carry no body
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ClassifyHttpError(c.status, c.body, "Op", "k").kind, c.kind) << c.body;
  }
}

TEST(S3ErrorsTest, ErrorsCarryTheServersCodeAndTheirFaultClass) {
  Error unsupported = ClassifyHttpError(
      501, "<Error><Code>NotImplemented</Code><Message>no</Message></Error>", "List", "");
  EXPECT_EQ(unsupported.code, "NotImplemented");
  EXPECT_EQ(unsupported.Wrap("sweep").code, "NotImplemented");
  Error corrupt = ClassifyHttpError(400, "<Error><Code>XAmzContentSHA256Mismatch</Code></Error>",
                                    "PutObject", "k");
  EXPECT_EQ(corrupt.fault, FaultClass::kHashMismatch);
  Error short_body =
      ClassifyHttpError(400, "<Error><Code>IncompleteBody</Code></Error>", "Put", "k");
  EXPECT_EQ(short_body.fault, FaultClass::kSizeMismatch);
  EXPECT_EQ(ClassifyHttpError(502, "<html>Bad Gateway</html>", "Put", "k").code, "");
}

TEST(S3ErrorsTest, AnUnsupportedOperationIsToldByItsCodeNotItsMessage) {
  EXPECT_TRUE(IsUnsupportedOperation(ClassifyHttpError(
      501, "<Error><Code>NotImplemented</Code></Error>", "ListMultipartUploads", "")));
  EXPECT_TRUE(IsUnsupportedOperation(
      ClassifyHttpError(405, "<Error><Code>MethodNotAllowed</Code></Error>", "List", "")
          .Wrap("sweep")));
  EXPECT_FALSE(IsUnsupportedOperation(
      ClassifyHttpError(403, "<Error><Code>AccessDenied</Code></Error>", "List", "")));
  EXPECT_FALSE(IsUnsupportedOperation(Error::Configuration("NotImplemented in the message only")));
}

// Error pages of proxies in front of a box, as nginx and HAProxy send them:
// a 400 without an S3 error code says nothing about the job. It is an outage
// (the job waits, its retries untouched). A 400 that S3 gave a code stays
// the job's.
TEST(S3ErrorsTest, A400WithoutAnS3CodeIsAnOutage) {
  constexpr char kNginx[] =
      "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n"
      "<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n"
      "</body>\r\n</html>\r\n";
  constexpr char kHaproxy[] =
      "<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n"
      "</body></html>\n";
  constexpr char kNoCode[] =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Message>Bad Request</Message></Error>";
  for (const char* body : {kNginx, kHaproxy, kNoCode, ""}) {
    Error error = ClassifyHttpError(400, body, "PutObject", "media/ab/cd/x.jpg");
    EXPECT_EQ(error.kind, ErrorKind::kOutage) << body;
    EXPECT_EQ(error.message.rfind("PutObject media/ab/cd/x.jpg: HTTP 400", 0), 0u) << error.message;
  }
  Error coded = ClassifyHttpError(
      400, "<Error><Code>InvalidArgument</Code><Message>Invalid argument</Message></Error>",
      "PutObject", "k");
  EXPECT_EQ(coded.kind, ErrorKind::kJobRetryable);
}

TEST(S3ErrorsTest, ErrorInsideASuccessfulCompleteReplyIsFound) {
  // CompleteMultipartUpload may answer 200 and report the failure in the body.
  constexpr char body[] =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>"
      "<Message>We encountered an internal error. Please try again.</Message>"
      "<RequestId>656c76696e6727732072657175657374</RequestId></Error>";
  S3ErrorBody error = ParseS3ErrorBody(body);
  EXPECT_EQ(error.code, "InternalError");
  EXPECT_EQ(error.request_id, "656c76696e6727732072657175657374");
}

TEST(S3ErrorsTest, XmlTagTextDecodesEntitiesAndWalksRepeatedElements) {
  EXPECT_EQ(XmlTagText("<a><Message>x &amp; y &lt;z&gt;</Message></a>", "Message"), "x & y <z>");
  EXPECT_EQ(XmlTagText("<Key/>", "Key"), "");
  EXPECT_FALSE(XmlTagText("<KeyMarker>a</KeyMarker>", "Key").has_value());
  constexpr char list[] =
      "<ListMultipartUploadsResult><Upload><Key>a</Key><UploadId>1</UploadId></Upload>"
      "<Upload><Key>b c</Key><UploadId>2</UploadId></Upload></ListMultipartUploadsResult>";
  auto uploads = XmlElements(list, "Upload");
  ASSERT_EQ(uploads.size(), 2u);
  EXPECT_EQ(XmlTagText(uploads[1], "Key"), "b c");
  EXPECT_EQ(XmlTagText(uploads[1], "UploadId"), "2");
  EXPECT_EQ(XmlEscape("a&b<\"'>"), "a&amp;b&lt;&quot;&apos;&gt;");
}

}  // namespace
}  // namespace media_sync::s3
