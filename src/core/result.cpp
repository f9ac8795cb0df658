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
    case ErrorKind::kInput:
      return "input";
  }
  return "unknown";
}

std::string_view ToString(FaultClass fault) {
  switch (fault) {
    case FaultClass::kOther:
      return "other";
    case FaultClass::kMissingFile:
      return "missing_file";
    case FaultClass::kSizeMismatch:
      return "size_mismatch";
    case FaultClass::kHashMismatch:
      return "hash_mismatch";
    case FaultClass::kInvalidJob:
      return "invalid_job";
    case FaultClass::kOutsideBuffer:
      return "outside_buffer";
    case FaultClass::kNotRegularFile:
      return "not_regular_file";
    case FaultClass::kLocalIo:
      return "local_io";
    case FaultClass::kNoCatalogRow:
      return "no_catalog_row";
    case FaultClass::kUnknownBox:
      return "unknown_box";
    case FaultClass::kLeaseExpired:
      return "lease_expired";
    case FaultClass::kTooLarge:
      return "too_large";
  }
  return "other";
}

}  // namespace media_sync
