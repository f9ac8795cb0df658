// Job payloads as producers push them (docs/contract.md §1 "job JSON", §2
// guarantee 5): whatever the bytes, ParseJob never crashes; a job it accepts
// is one the worker can act on (a lower-case hash, the content key of that
// hash, a usable path); the worker's own rewrites of it (retry count,
// failed-queue entry, the runbook's requeue) parse again to the same job; and
// a failed-queue entry is valid JSON that keeps the payload.
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/job.h"
#include "fuzz_support.h"
#include "support/job_shape.h"

namespace media_sync::fuzz {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kFailureFields[] = {"error", "failed_at", "attempts"};

using media_sync::testing::DecodeBase64;
using media_sync::testing::Depth;
using media_sync::testing::IsLowerHexSha256;

bool IsUtf8(std::string_view text) {
  try {
    (void)Json(std::string(text)).dump();
    return true;
  } catch (const Json::type_error&) {
    return false;
  }
}

void ExpectSameJob(const Job& a, const Job& b, std::string_view context) {
  FUZZ_CHECK(a.sha256 == b.sha256, context);
  FUZZ_CHECK(a.s3_key == b.s3_key, context);
  FUZZ_CHECK(a.local_path == b.local_path, context);
  FUZZ_CHECK(a.file_size == b.file_size, context);
  FUZZ_CHECK(a.storage_box_id == b.storage_box_id, context);
  FUZZ_CHECK(a.queued_at == b.queued_at, context);
}

void CheckAccepted(const Job& job, uint64_t salt) {
  FUZZ_CHECK(IsLowerHexSha256(job.sha256), job.sha256);

  // The key is the content key of the hash, with at most a short
  // alphanumeric extension: nothing a job says can aim it elsewhere.
  const std::string bare = ContentKey(job.sha256, "");
  FUZZ_CHECK(job.s3_key.starts_with(bare), job.s3_key);
  std::string_view extension = std::string_view(job.s3_key).substr(bare.size());
  if (!extension.empty()) {
    FUZZ_CHECK(extension.front() == '.', job.s3_key);
    extension.remove_prefix(1);
    FUZZ_CHECK(!extension.empty() && extension.size() <= 16, job.s3_key);
    for (char c : extension) FUZZ_CHECK(std::isalnum(static_cast<unsigned char>(c)), job.s3_key);
  }
  FUZZ_CHECK(job.s3_key == ContentKey(job.sha256, extension), job.s3_key);

  FUZZ_CHECK(!job.local_path.empty(), job.payload);
  FUZZ_CHECK(job.local_path.find('\0') == std::string::npos, job.local_path);
  FUZZ_CHECK(!job.storage_box_id || !job.storage_box_id->empty(), job.payload);
  FUZZ_CHECK(job.retry_count >= 0 && job.retry_count <= 1000, job.payload);

  // Delivered again as it is (a redelivery after a crash): the same job.
  auto again = ParseJob(job.payload);
  FUZZ_CHECK(again.ok(), again.ok() ? job.payload : again.error().message);
  ExpectSameJob(job, *again, job.payload);
  FUZZ_CHECK(again->retry_count == job.retry_count, job.payload);

  // A retry: the rewritten payload is the same job with the new count.
  const int retry = static_cast<int>(salt % 1001);
  const std::string retried = WithRetryCount(job.payload, retry);
  auto parsed_retry = ParseJob(retried);
  FUZZ_CHECK(parsed_retry.ok(), parsed_retry.ok() ? retried : parsed_retry.error().message);
  ExpectSameJob(job, *parsed_retry, retried);
  FUZZ_CHECK(parsed_retry->retry_count == retry, retried);
  FUZZ_CHECK(!parsed_retry->requeued_from_failed, retried);

  // Parked, then requeued by the runbook (RPOPLPUSH failed → pending): the
  // same job with a fresh budget.
  const auto now = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000000));
  const std::string entry = FailedEntry(
      job.payload, "File missing from both local buffer and MinIO", job.retry_count + 1, now);
  auto requeued = ParseJob(entry);
  FUZZ_CHECK(requeued.ok(), requeued.ok() ? entry : requeued.error().message);
  ExpectSameJob(job, *requeued, entry);
  FUZZ_CHECK(requeued->requeued_from_failed, entry);
  FUZZ_CHECK(requeued->retry_count == 0, entry);
}

void CheckFailedEntry(std::string_view payload, const std::string& error, int attempts) {
  const auto now = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123));
  const std::string text = FailedEntry(payload, error, attempts, now);
  Json entry = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!entry.is_discarded() && entry.is_object(), text);
  if (error.size() <= kMaxFailedErrorBytes) {
    FUZZ_CHECK(entry.value("error", Json()) == Json(error), text);
  } else {
    // Cut (a UTF-8 sequence cut short comes out as U+FFFD) and marked.
    const Json& cut = entry["error"];
    FUZZ_CHECK(cut.is_string() && cut.get_ref<const std::string&>().ends_with("...") &&
                   cut.get_ref<const std::string&>().size() <= kMaxFailedErrorBytes + 3 + 9,
               text);
  }
  FUZZ_CHECK(entry.value("failed_at", Json()) == Json(IsoTimestamp(now)), text);
  FUZZ_CHECK(entry.value("attempts", Json()) == Json(attempts), text);

  Json document = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  const bool job_object = payload.size() <= kMaxJobBytes && !document.is_discarded() &&
                          document.is_object() && Depth(document) <= kMaxJobDepth;
  if (entry.contains("raw")) {
    FUZZ_CHECK(!job_object, text);
    FUZZ_CHECK(entry.size() == 4, text);
    FUZZ_CHECK(entry["raw"].is_string() && entry["raw"].get<std::string>() == payload, text);
  } else if (entry.contains("raw_base64")) {
    FUZZ_CHECK(!job_object, text);
    FUZZ_CHECK(entry.size() == 4, text);
    FUZZ_CHECK(!IsUtf8(payload), text);
    FUZZ_CHECK(entry["raw_base64"].is_string(), text);
    FUZZ_CHECK(DecodeBase64(entry["raw_base64"].get<std::string>()) == std::string(payload), text);
  } else {
    // Kept as the job object itself: every field of the payload is there
    // (the failure fields replaced by this failure's).
    FUZZ_CHECK(job_object, text);
    for (auto field : kFailureFields) {
      entry.erase(std::string(field));
      document.erase(std::string(field));
    }
    FUZZ_CHECK(entry == document, text);
  }
}

void CheckTimestamps(std::string_view text, const uint8_t* data, size_t size) {
  (void)ParseIsoTimestamp(text);
  // Our own timestamps read back exactly (milliseconds, 1970 to 2255: the
  // clock counts nanoseconds in 64 bits, which ends in 2262).
  uint64_t bits = 0;
  std::memcpy(&bits, data, std::min(size, sizeof(bits)));
  const auto when = std::chrono::system_clock::time_point(
      std::chrono::milliseconds(static_cast<int64_t>(bits % 9000000000000ull)));
  const std::string written = IsoTimestamp(when);
  FUZZ_CHECK(ParseIsoTimestamp(written) == when, written);
}

}  // namespace
}  // namespace media_sync::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace media_sync;
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  auto job = ParseJob(payload);
  std::string error;
  if (job.ok()) {
    uint64_t salt = size;
    for (size_t i = 0; i < size && i < 8; ++i) salt = salt * 131 + data[i];
    fuzz::CheckAccepted(*job, salt);
    error = "Path outside media buffer: " + job->local_path;
  } else {
    // Every refusal is the job's own permanent fault, named as such.
    FUZZ_CHECK(job.error().kind == ErrorKind::kJobPermanent, job.error().message);
    FUZZ_CHECK(job.error().fault == FaultClass::kInvalidJob, job.error().message);
    FUZZ_CHECK(job.error().message.starts_with("Invalid job: "), job.error().message);
    error = job.error().message;
  }
  fuzz::CheckFailedEntry(payload, error, 1 + static_cast<int>(size % 5));
  fuzz::CheckTimestamps(payload, data, size);
  return 0;
}
