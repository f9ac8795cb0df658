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
#include <variant>

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
  uint64_t bytes_uploaded = 0;  // bytes this attempt stored (0: an identical object was there)

  // What the job was, for metrics and the outcome's log line; empty when the
  // payload did not parse.
  std::string sha256;
  std::string s3_key;
  std::optional<std::string> storage_box_id;
  uint64_t file_size = 0;
  std::optional<std::chrono::system_clock::time_point> queued_at;
  FaultClass fault = FaultClass::kOther;              // kRetryScheduled, kFailed
  std::chrono::steady_clock::duration upload_time{};  // spent in ObjectStore::Upload

  // The decisions the pipeline makes, one factory each.
  // Recorded in the catalog (synced now, or before): remove from processing.
  static Decision Ack(bool synced_now, std::string message);
  // A job fault that may heal: wait until `due` with `payload` (retry_count raised).
  static Decision Retry(std::string payload, std::chrono::system_clock::time_point due,
                        std::string message, FaultClass fault);
  // The job's box is down: wait until `due`, no attempt counted.
  static Decision Defer(std::string payload, std::chrono::system_clock::time_point due,
                        std::string message);
  // Park `failed_entry` in the failed queue.
  static Decision Fail(std::string failed_entry, std::string message, FaultClass fault);
  // Hand the job back to the head of pending (shutdown).
  static Decision Release(std::string message);
  // A shared service is down: keep the job, back off, process it again.
  static Decision Hold(std::string message);
};

class Pipeline {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  // Borrows everything; all must outlive the pipeline. Thread-safe if its
  // parts are (one pipeline serves every worker thread).
  Pipeline(StoreRouter& stores, Catalog& catalog, const buffer::LocalBuffer& buffer,
           PipelineSettings settings, Clock clock = std::chrono::system_clock::now);

  // `ticket`: the job's claim from StoreRouter::AwaitIntake, handed to the
  // router's Admit (or given back when the job never reaches its box).
  Decision Process(const Delivery& delivery, const std::stop_token& stop,
                   StoreRouter::Ticket ticket = {}) const;
  // StoreRouter::AwaitIntake: whether the worker may take one more job.
  std::optional<StoreRouter::Ticket> AwaitIntake(const std::stop_token& stop,
                                                 std::chrono::milliseconds max_wait) const {
    return stores_.AwaitIntake(stop, max_wait);
  }

 private:
  // A step's result: the decision it reached, or the failure that stopped it
  // with where it came from (a store's outage makes only its box wait, a
  // catalog outage holds every job, a job fault counts an attempt).
  enum class Source { kStore, kCatalog, kJob };
  struct StepFailure {
    Error error;
    Source source;
  };
  using StepResult = std::variant<Decision, StepFailure>;
  // What the upload step did, for the Ack.
  struct Transfer {
    uint64_t bytes = 0;
    std::chrono::steady_clock::duration time{};
  };

  // Steps 2-5 for a job whose box admitted it.
  Decision ProcessJob(const Job& job, const Delivery& delivery, const std::stop_token& stop,
                      StoreRouter::Ticket ticket) const;
  // `slot` is given back as soon as the box has done its part (the upload,
  // or the HeadObject), before the catalog is written: the box's limit
  // counts only the work it does.
  StepResult Sync(const Job& job, ObjectStore& objects, const std::stop_token& stop,
                  StoreRouter::Slot& slot) const;
  // No local file: the object must already be there (a crash after upload).
  StepResult SyncFromStorage(const Job& job, ObjectStore& objects, const std::stop_token& stop,
                             StoreRouter::Slot& slot) const;
  // Local file present: upload it unless an identical object is stored.
  // Errors: job faults are the job's, anything else the store's.
  Result<Transfer> Upload(const Job& job, const buffer::LocalFile& file, ObjectStore& objects,
                          const std::stop_token& stop) const;
  StepResult Record(const Job& job, const Transfer& transfer) const;
  // A step's failure → the decision, and the box's health reported.
  Decision OnFailure(const Job& job, const Delivery& delivery, const StepFailure& failure) const;
  Decision OnJobFault(const Job& job, const Delivery& delivery, const Error& error) const;
  Decision Fail(const std::string& payload, const Error& error, int attempts) const;

  StoreRouter& stores_;
  Catalog& catalog_;
  const buffer::LocalBuffer& buffer_;
  PipelineSettings settings_;
  Clock clock_;
};

}  // namespace media_sync
