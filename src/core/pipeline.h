// The job pipeline: validate -> locate -> upload and verify -> record ->
// delete -> decide what the queue does with the job. Pure logic over the
// seams (StoreRouter/ObjectStore, Catalog) and the local buffer; every step
// is safe to repeat after a crash (docs/contract.md §3).
//
// Process() never touches the queue: it returns a Decision that the worker
// applies, so the decisions are unit-tested with in-memory doubles.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>

#include "buffer/local_buffer.h"
#include "core/catalog.h"
#include "core/job.h"
#include "core/job_queue.h"
#include "core/store_router.h"

namespace media_sync {

struct PipelineSettings {
  int max_retries = 3;                  // MAX_RETRIES
  std::chrono::seconds retry_delay{5};  // RETRY_DELAY_SECONDS: retry n waits n x this
};

struct Decision {
  enum class Action {
    kAck,      // outcome recorded (synced or already synced): remove from processing
    kDelay,    // into the delayed set until `due` with `payload` (retry or box down)
    kFail,     // park `payload` (the failed entry) in the failed queue
    kRelease,  // hand back to the head of pending (shutdown)
    kHold,     // a shared service (PostgreSQL, catalog) is down: keep the job, back off, retry
  };
  enum class Outcome {
    kSynced,
    kAlreadySynced,
    kRetryScheduled,
    kFailed,
    kBoxDown,
    kServiceDown,
    kCancelled,
  };

  Action action = Action::kAck;
  Outcome outcome = Outcome::kSynced;
  std::string payload;
  std::chrono::system_clock::time_point due{};
  std::string message;  // why (operator-facing)
  // Something an operator must act on although the outcome stands: a synced
  // job whose local file could not be deleted (the file is left behind).
  std::string note;
  uint64_t bytes_uploaded = 0;  // bytes sent to storage by this attempt

  // What the job was, for metrics and the outcome's log line; empty when the
  // payload did not parse.
  std::string sha256;
  std::string s3_key;
  std::optional<std::string> storage_box_id;
  uint64_t file_size = 0;
  std::optional<std::chrono::system_clock::time_point> queued_at;
  FaultClass fault = FaultClass::kOther;              // kRetryScheduled, kFailed
  std::chrono::steady_clock::duration upload_time{};  // spent in ObjectStore::Upload
};

class Pipeline {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  // Borrows everything; all must outlive the pipeline. Thread-safe if its
  // parts are (one pipeline serves every worker thread).
  Pipeline(StoreRouter& stores, Catalog& catalog, const buffer::LocalBuffer& buffer,
           PipelineSettings settings, Clock clock = std::chrono::system_clock::now);

  Decision Process(const Delivery& delivery, std::stop_token stop) const;

 private:
  Decision ProcessJob(const Job& job, const Delivery& delivery, std::stop_token stop) const;
  Decision OnJobFault(const Job& job, const Delivery& delivery, const Error& error) const;
  Decision Fail(const std::string& payload, const Error& error, int attempts) const;

  StoreRouter& stores_;
  Catalog& catalog_;
  const buffer::LocalBuffer& buffer_;
  PipelineSettings settings_;
  Clock clock_;
};

}  // namespace media_sync
