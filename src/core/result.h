// The one error model of media-sync: every fallible call returns Result<T>.
//
// An Error says whose fault a failure is, because that decides what the
// worker does with the job:
//   kOutage         the world is down (server unreachable, 5xx, timeout):
//                   the job waits, its retry budget is untouched.
//   kConfiguration  a service rejects us (bad keys, missing bucket): the
//                   service is unusable until an operator fixes it; jobs wait.
//   kJobRetryable   the job's own fault that may heal (file missing, size or
//                   hash mismatch, no catalog row): retried on the schedule,
//                   then parked in the failed queue.
//   kJobPermanent   no retry can fix it (malformed JSON, path outside the
//                   buffer, key not matching the hash): failed queue at once.
//   kCancelled      the process is shutting down; the job is handed back.
//   kInput          not a job: a file or argument given to an operator
//                   command cannot be used; the command names it and goes on.
//
// Messages are operator-facing text and never carry secrets.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace media_sync {

enum class ErrorKind {
  kOutage,
  kConfiguration,
  kJobRetryable,
  kJobPermanent,
  kCancelled,
  kInput,
};

std::string_view ToString(ErrorKind kind);

// What kind of job fault an error is, set where the fault is found, so that
// metrics and logs count faults by class without reading messages. kOther
// for job faults nobody classified; meaningless for other kinds.
enum class FaultClass {
  kOther,
  kMissingFile,     // neither the local file nor the object exists
  kSizeMismatch,    // file or object size differs from file_size
  kHashMismatch,    // bytes do not hash to the job's sha256
  kInvalidJob,      // malformed JSON, wrong types, key not matching the hash
  kOutsideBuffer,   // local_path escapes MEDIA_BUFFER_PATH
  kNotRegularFile,  // FIFO, socket, device, directory
  kLocalIo,         // the local file cannot be read or deleted
  kNoCatalogRow,    // no media_files row for the sha256
  kUnknownBox,      // storage_box_id not in storage_boxes
  kLeaseExpired,    // the job's worker died too often while holding it
  kTooLarge,        // the file needs larger upload buffers than the settings allow
};

// The metric label of a class: "missing_file", "size_mismatch", ...
std::string_view ToString(FaultClass fault);

struct Error {
  ErrorKind kind = ErrorKind::kOutage;
  std::string message;
  FaultClass fault = FaultClass::kOther;
  // The remote service's own error code when it gave one (S3's
  // "NotImplemented", "NoSuchKey", ...), for callers that must tell one
  // answer from another; empty otherwise.
  std::string code{};

  static Error Outage(std::string message) { return {ErrorKind::kOutage, std::move(message)}; }
  static Error Configuration(std::string message) {
    return {ErrorKind::kConfiguration, std::move(message)};
  }
  static Error JobRetryable(std::string message) {
    return {ErrorKind::kJobRetryable, std::move(message)};
  }
  static Error JobPermanent(std::string message) {
    return {ErrorKind::kJobPermanent, std::move(message)};
  }
  static Error Cancelled(std::string message) {
    return {ErrorKind::kCancelled, std::move(message)};
  }
  static Error Input(std::string message) { return {ErrorKind::kInput, std::move(message)}; }

  // True for failures of the world rather than of the job.
  bool IsOutage() const { return kind == ErrorKind::kOutage; }
  bool IsJobFault() const {
    return kind == ErrorKind::kJobRetryable || kind == ErrorKind::kJobPermanent;
  }

  // Same kind and class, message prefixed with context ("HeadObject media/..: ").
  Error Wrap(std::string_view context) const {
    return {kind, std::string(context) + ": " + message, fault, code};
  }

  // This error, classified.
  Error As(FaultClass fault_class) && {
    fault = fault_class;
    return std::move(*this);
  }
};

// Result<T> holds either a T or an Error. Checked access: value() on an error
// (or error() on a value) is a programming bug and aborts via std::get.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value)
      : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status Ok() { return {}; }

}  // namespace media_sync
