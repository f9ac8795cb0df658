#include "core/pipeline.h"

#include <variant>

#include "core/error_texts.h"
#include "core/hash.h"
#include "core/job.h"

namespace media_sync {
namespace {

using Action = Decision::Action;
using Outcome = Decision::Outcome;

// Where a step's failure came from decides who waits: a store's outage makes
// only its box wait, a catalog outage holds everything.
enum class Source { kStore, kCatalog, kJob };

struct StepFailure {
  Error error;
  Source source;
};

// A shared service (PostgreSQL, the catalog) is down: the job is kept.
Decision Hold(const Error& error) {
  Decision decision;
  decision.action = Action::kHold;
  decision.outcome = Outcome::kServiceDown;
  decision.message = error.message;
  return decision;
}

}  // namespace

Pipeline::Pipeline(StoreRouter& stores, Catalog& catalog, const buffer::LocalBuffer& buffer,
                   PipelineSettings settings, Clock clock)
    : stores_(stores),
      catalog_(catalog),
      buffer_(buffer),
      settings_(settings),
      clock_(std::move(clock)) {}

Decision Pipeline::Fail(const std::string& payload, const Error& error, int attempts) const {
  Decision decision;
  decision.action = Action::kFail;
  decision.outcome = Outcome::kFailed;
  decision.payload = FailedEntry(payload, error.message, attempts, clock_());
  decision.message = error.message;
  decision.fault = error.fault;
  return decision;
}

Decision Pipeline::OnJobFault(const Job& job, const Delivery& delivery, const Error& error) const {
  int attempts = job.retry_count + 1 + static_cast<int>(delivery.redeliveries);
  if (error.kind == ErrorKind::kJobPermanent || job.retry_count >= settings_.max_retries) {
    return Fail(job.payload, error, attempts);
  }
  int next = job.retry_count + 1;
  Decision decision;
  decision.action = Action::kDelay;
  decision.outcome = Outcome::kRetryScheduled;
  decision.payload = WithRetryCount(job.payload, next);
  decision.due = clock_() + settings_.retry_delay * next;
  decision.fault = error.fault;
  decision.message = error.message + " (retry " + std::to_string(next) + " of " +
                     std::to_string(settings_.max_retries) + " in " +
                     std::to_string((settings_.retry_delay * next).count()) + " s)";
  return decision;
}

Decision Pipeline::Process(const Delivery& delivery, std::stop_token stop) const {
  auto job = ParseJob(delivery.payload);
  if (!job) return Fail(delivery.payload, job.error(), 1 + static_cast<int>(delivery.redeliveries));
  Decision decision = ProcessJob(*job, delivery, std::move(stop));
  decision.sha256 = job->sha256;
  decision.s3_key = job->s3_key;
  decision.storage_box_id = job->storage_box_id;
  decision.file_size = job->file_size;
  decision.queued_at = job->queued_at;
  return decision;
}

Decision Pipeline::ProcessJob(const Job& job, const Delivery& delivery,
                              std::stop_token stop) const {
  if (delivery.redeliveries > settings_.max_retries) {
    return Fail(
        job.payload,
        Error::JobPermanent("Worker lease expired " + std::to_string(delivery.redeliveries) +
                            " times while this job was in flight (the job may crash or "
                            "hang the worker)")
            .As(FaultClass::kLeaseExpired),
        job.retry_count + 1 + static_cast<int>(delivery.redeliveries));
  }

  const StoreRouter::BoxId& box = job.storage_box_id;
  auto defer_for_box = [&](StoreRouter::TimePoint due, const std::string& why) {
    Decision decision;
    decision.action = Action::kDelay;
    decision.outcome = Outcome::kBoxDown;
    decision.payload = job.payload;  // the box's fault: no attempt is counted
    decision.due = due;
    decision.message = why;
    return decision;
  };
  // Asked once: when the box's backoff has just ended, this job is its probe.
  // The slot, held until this function returns, bounds the share of the
  // in-flight jobs one box can tie up while a hang is being detected.
  StoreRouter::Admission admission = stores_.Admit(box, stop);
  if (admission.defer_until) return defer_for_box(*admission.defer_until, admission.reason);

  auto store = stores_.ForBox(box);
  if (!store) {
    stores_.AbandonProbe(box);  // the box itself was not asked
    if (store.error().IsJobFault()) return OnJobFault(job, delivery, store.error());
    return Hold(store.error());
  }

  // Runs steps 2-5; each failure says its source.
  auto run = [&]() -> std::variant<Decision, StepFailure> {
    ObjectStore& objects = **store;
    auto local = buffer_.Open(job.local_path);
    if (!local) return StepFailure{local.error(), Source::kJob};

    uint64_t uploaded = 0;
    std::chrono::steady_clock::duration upload_time{};
    auto record = [&]() -> std::variant<Decision, StepFailure> {
      auto recorded = catalog_.RecordSync(job.sha256, job.file_size, box);
      if (!recorded) {
        return StepFailure{recorded.error(),
                           recorded.error().IsJobFault() ? Source::kJob : Source::kCatalog};
      }
      Decision decision;
      decision.action = Action::kAck;
      decision.outcome =
          *recorded == RecordOutcome::kSynced ? Outcome::kSynced : Outcome::kAlreadySynced;
      decision.bytes_uploaded = uploaded;
      decision.upload_time = upload_time;
      decision.message = job.s3_key;
      return decision;
    };

    if (!local->has_value()) {
      // A crash after the upload leaves the object without the local file.
      auto info = objects.Stat(job.s3_key, stop);
      if (!info) return StepFailure{info.error(), Source::kStore};
      stores_.ReportSuccess(box);
      if (!info->has_value()) {
        return StepFailure{
            Error::JobRetryable(std::string(kMissingEverywhere)).As(FaultClass::kMissingFile),
            Source::kJob};
      }
      if ((*info)->size != job.file_size) {
        return StepFailure{Error::JobRetryable(SizeMismatch(job.file_size, (*info)->size) +
                                               " (local file missing; object in storage)")
                               .As(FaultClass::kSizeMismatch),
                           Source::kJob};
      }
      if (!(*info)->sha256.empty() && (*info)->sha256 != job.sha256) {
        return StepFailure{
            Error::JobRetryable("Local file missing and the object in storage has sha256 " +
                                (*info)->sha256 + ", expected " + job.sha256)
                .As(FaultClass::kHashMismatch),
            Source::kJob};
      }
      return record();
    }

    const buffer::LocalFile& file = **local;
    if (file.size() != job.file_size) {
      return StepFailure{Error::JobRetryable(SizeMismatch(job.file_size, file.size()))
                             .As(FaultClass::kSizeMismatch),
                         Source::kJob};
    }
    auto info = objects.Stat(job.s3_key, stop);
    if (!info) return StepFailure{info.error(), Source::kStore};
    stores_.ReportSuccess(box);
    bool already_stored =
        info->has_value() && (*info)->size == job.file_size && (*info)->sha256 == job.sha256;
    if (already_stored) {
      // Nothing to upload, but the local copy is deleted only if its own
      // bytes are the job's: hash it first.
      auto local_hash = Sha256OfFd(file.fd(), file.size());
      if (!local_hash) return StepFailure{local_hash.error(), Source::kJob};
      if (*local_hash != job.sha256) {
        return StepFailure{Error::JobRetryable("Local file does not match sha256: expected " +
                                               job.sha256 + ", got " + *local_hash)
                               .As(FaultClass::kHashMismatch),
                           Source::kJob};
      }
    } else {
      auto upload_started = std::chrono::steady_clock::now();
      auto put = objects.Upload(job.s3_key, file.fd(), file.size(), job.sha256, stop);
      upload_time = std::chrono::steady_clock::now() - upload_started;
      if (!put) {
        Source source = put.error().IsJobFault() ? Source::kJob : Source::kStore;
        return StepFailure{put.error(), source};
      }
      uploaded = file.size();
      stores_.ReportSuccess(box);
    }

    auto recorded = record();
    if (std::holds_alternative<StepFailure>(recorded)) return recorded;
    if (auto removed = buffer_.Remove(file); !removed) {
      // Committed: the job is synced whatever becomes of its local copy, and
      // retrying it would only count a fault it does not have.
      std::get<Decision>(recorded).note =
          "synced, but the local file was left in the buffer: " + removed.error().message;
    }
    return recorded;
  };

  auto result = run();
  if (auto* decision = std::get_if<Decision>(&result)) return std::move(*decision);
  auto& failure = std::get<StepFailure>(result);
  // A local fault before any call to the store says nothing about the box.
  if (failure.source != Source::kStore) stores_.AbandonProbe(box);
  const Error& error = failure.error;
  if (error.kind == ErrorKind::kCancelled) {
    Decision decision;
    decision.action = Action::kRelease;
    decision.outcome = Outcome::kCancelled;
    decision.message = error.message;
    return decision;
  }
  if (error.IsJobFault()) return OnJobFault(job, delivery, error);
  if (failure.source == Source::kStore) {
    stores_.ReportFailure(box, error);
    return defer_for_box(stores_.DownUntil(box).value_or(clock_() + std::chrono::seconds(1)),
                         error.message);
  }
  return Hold(error);
}

}  // namespace media_sync
