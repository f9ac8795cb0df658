#include "core/result.h"

namespace media_sync {

std::string_view ToString(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kOutage:
      return "outage";
    case ErrorKind::kConfiguration:
      return "configuration";
    case ErrorKind::kJobRetryable:
      return "job-retryable";
    case ErrorKind::kJobPermanent:
      return "job-permanent";
    case ErrorKind::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

}  // namespace media_sync
