// S3 error replies, whatever a server (or something posing as one) sends:
// parsing never crashes, every reply is classified as one of the kinds, and
// the message built from it stays proportionate to the reply, so a hostile
// body cannot flood logs or the failed queue beyond its own size.
//
// Input: an optional first line with the HTTP status ("503\n"), then the body.
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "s3/s3_errors.h"

namespace media_sync::fuzz {
namespace {

constexpr std::string_view kTags[] = {"Error", "Code", "Message", "RequestId", "Key", "UploadId"};

bool IsKind(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kOutage:
    case ErrorKind::kConfiguration:
    case ErrorKind::kJobRetryable:
    case ErrorKind::kJobPermanent:
      return true;
    case ErrorKind::kCancelled:  // only a stop request cancels, never a reply
      return false;
  }
  return false;
}

bool Within(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

void CheckExtraction(std::string_view xml, std::string_view tag) {
  auto text = s3::XmlTagText(xml, tag);
  // Entities only shrink: the text is never longer than the document.
  if (text) FUZZ_CHECK(text->size() <= xml.size(), *text);

  // Elements are pieces of the document, in order, never overlapping, and
  // walking them with a cursor finds the same ones.
  auto elements = s3::XmlElements(xml, tag);
  const char* previous_end = xml.data();
  size_t cursor = 0;
  for (std::string_view element : elements) {
    FUZZ_CHECK(Within(element, xml), xml);
    FUZZ_CHECK(element.data() >= previous_end, xml);
    previous_end = element.data() + element.size();
    size_t before = cursor;
    auto walked = s3::XmlTagText(xml, tag, &cursor);
    FUZZ_CHECK(walked.has_value(), xml);
    FUZZ_CHECK(cursor > before || element.empty(), xml);
  }
  FUZZ_CHECK(elements.size() <= xml.size(), xml);
}

}  // namespace
}  // namespace media_sync::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace media_sync;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  long status = 400;
  if (input.size() >= 4 && input[3] == '\n' && std::isdigit(static_cast<unsigned char>(input[0])) &&
      std::isdigit(static_cast<unsigned char>(input[1])) &&
      std::isdigit(static_cast<unsigned char>(input[2]))) {
    status = (input[0] - '0') * 100 + (input[1] - '0') * 10 + (input[2] - '0');
    input.remove_prefix(4);
  }

  s3::S3ErrorBody parsed = s3::ParseS3ErrorBody(input);
  FUZZ_CHECK(
      parsed.code.size() + parsed.message.size() + parsed.request_id.size() <= 3 * input.size(),
      input);

  const std::string operation = "PutObject";
  const std::string key = "media/ab/cd/abcd.jpg";
  Error error = s3::ClassifyHttpError(status, input, operation, key);
  FUZZ_CHECK(fuzz::IsKind(error.kind), error.message);
  FUZZ_CHECK(error.kind == s3::KindForS3Error(status, parsed.code), error.message);
  FUZZ_CHECK(error.code == parsed.code, error.message);
  const std::string prefix = operation + " " + key + ": HTTP " + std::to_string(status);
  FUZZ_CHECK(error.message.starts_with(prefix), error.message);
  // The reply's own texts, once each, plus a fixed frame.
  FUZZ_CHECK(error.message.size() <= prefix.size() + 3 * input.size() + 120, error.message);

  for (std::string_view tag : fuzz::kTags) fuzz::CheckExtraction(input, tag);
  // A tag from the input itself: its first short run of letters.
  size_t letters = 0;
  while (letters < input.size() && letters < 12 &&
         std::isalpha(static_cast<unsigned char>(input[letters]))) {
    ++letters;
  }
  fuzz::CheckExtraction(input, input.substr(0, letters));

  // Whatever text is escaped comes back from the element unchanged.
  const std::string wrapped = "<Message>" + s3::XmlEscape(input) + "</Message>";
  auto back = s3::XmlTagText(wrapped, "Message");
  FUZZ_CHECK(back.has_value() && *back == input, wrapped);
  return 0;
}
