#include "core/pipeline.h"

#include "core/error_texts.h"
#include "core/job.h"

namespace media_sync {

using Action = Decision::Action;
using Outcome = Decision::Outcome;

Decision Decision::Ack(bool synced_now, std::string message) {
  Decision decision;
  decision.action = Action::kAck;
  decision.outcome = synced_now ? Outcome::kSynced : Outcome::kAlreadySynced;
  decision.message = std::move(message);
  return decision;
}

Decision Decision::Retry(std::string payload, std::chrono::system_clock::time_point due,
                         std::string message, FaultClass fault) {
  Decision decision;
  decision.action = Action::kDelay;
  decision.outcome = Outcome::kRetryScheduled;
  decision.payload = std::move(payload);
  decision.due = due;
  decision.message = std::move(message);
  decision.fault = fault;
  return decision;
}

Decision Decision::Defer(std::string payload, std::chrono::system_clock::time_point due,
                         std::string message) {
  Decision decision;
  decision.action = Action::kDelay;
  decision.outcome = Outcome::kBoxDown;
  decision.payload = std::move(payload);
  decision.due = due;
  decision.message = std::move(message);
  return decision;
}

Decision Decision::Fail(std::string failed_entry, std::string message, FaultClass fault) {
  Decision decision;
  decision.action = Action::kFail;
  decision.outcome = Outcome::kFailed;
  decision.payload = std::move(failed_entry);
  decision.message = std::move(message);
  decision.fault = fault;
  return decision;
}

Decision Decision::Release(std::string message) {
  Decision decision;
  decision.action = Action::kRelease;
  decision.outcome = Outcome::kCancelled;
  decision.message = std::move(message);
  return decision;
}

Decision Decision::Hold(std::string message) {
  Decision decision;
  decision.action = Action::kHold;
  decision.outcome = Outcome::kServiceDown;
  decision.message = std::move(message);
  return decision;
}

Pipeline::Pipeline(StoreRouter& stores, Catalog& catalog, const buffer::LocalBuffer& buffer,
                   PipelineSettings settings, Clock clock)
    : stores_(stores),
      catalog_(catalog),
      buffer_(buffer),
      settings_(settings),
      clock_(std::move(clock)) {}

Decision Pipeline::Process(const Delivery& delivery, const std::stop_token& stop,
                           StoreRouter::Ticket ticket) const {
  // 1 validate
  auto job = ParseJob(delivery.payload);
  if (!job) return Fail(delivery.payload, job.error(), 1 + static_cast<int>(delivery.redeliveries));
  Decision decision = ProcessJob(*job, delivery, stop, std::move(ticket));
  decision.sha256 = job->sha256;
  decision.s3_key = job->s3_key;
  decision.storage_box_id = job->storage_box_id;
  decision.file_size = job->file_size;
  decision.queued_at = job->queued_at;
  return decision;
}

Decision Pipeline::ProcessJob(const Job& job, const Delivery& delivery, const std::stop_token& stop,
                              StoreRouter::Ticket ticket) const {
  if (delivery.redeliveries > settings_.max_retries) {
    return Fail(
        job.payload,
        Error::JobPermanent("Worker lease expired " + std::to_string(delivery.redeliveries) +
                            " times while this job was in flight (the job may crash or "
                            "hang the worker)")
            .As(FaultClass::kLeaseExpired),
        job.retry_count + 1 + static_cast<int>(delivery.redeliveries));
  }

  // Asked once: when the box's backoff has just ended, this job is its probe.
  // The slot, held until the box has done its part, bounds the share of the
  // in-flight jobs one box can tie up while a hang is being detected.
  StoreRouter::Admission admission = stores_.Admit(job.storage_box_id, stop, std::move(ticket));
  if (admission.defer_until) {
    // The box's fault: no attempt is counted.
    return Decision::Defer(job.payload, *admission.defer_until, admission.reason);
  }
  auto store = stores_.ForBox(job.storage_box_id);
  if (!store) {
    stores_.AbandonProbe(job.storage_box_id);  // the box itself was not asked
    if (store.error().IsJobFault()) return OnJobFault(job, delivery, store.error());
    return Decision::Hold(store.error().message);
  }

  StepResult result = Sync(job, **store, stop, admission.slot);
  if (auto* decision = std::get_if<Decision>(&result)) return std::move(*decision);
  return OnFailure(job, delivery, std::get<StepFailure>(result));
}

Pipeline::StepResult Pipeline::Sync(const Job& job, ObjectStore& objects,
                                    const std::stop_token& stop, StoreRouter::Slot& slot) const {
  // 2 locate
  auto local = buffer_.Open(job.local_path);
  if (!local) return StepFailure{local.error(), Source::kJob};
  if (!local->has_value()) return SyncFromStorage(job, objects, stop, slot);
  const buffer::LocalFile& file = **local;
  if (file.size() != job.file_size) {
    return StepFailure{
        Error::JobRetryable(SizeMismatch(job.file_size, file.size())).As(FaultClass::kSizeMismatch),
        Source::kJob};
  }

  // 3 upload and verify
  auto transfer = Upload(job, file, objects, stop);
  if (transfer) {
    slot.Succeeded(file.size());
  } else {
    slot.Reset();
  }
  if (!transfer) {
    return StepFailure{transfer.error(),
                       transfer.error().IsJobFault() ? Source::kJob : Source::kStore};
  }

  // 4 record
  StepResult recorded = Record(job, *transfer);
  if (std::holds_alternative<StepFailure>(recorded)) return recorded;

  // 5 delete
  if (auto removed = buffer_.Remove(file, job.sha256); !removed) {
    // Committed: the job is synced whatever becomes of its local copy, and
    // retrying it would only count a fault it does not have.
    std::get<Decision>(recorded).note =
        "synced, but the local file was left in the buffer: " + removed.error().message;
  }
  return recorded;
}

Pipeline::StepResult Pipeline::SyncFromStorage(const Job& job, ObjectStore& objects,
                                               const std::stop_token& stop,
                                               StoreRouter::Slot& slot) const {
  auto info = objects.Stat(job.s3_key, stop);
  if (!info) {
    slot.Reset();
    return StepFailure{info.error(), Source::kStore};
  }
  slot.Succeeded(0);
  stores_.ReportSuccess(job.storage_box_id);
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
  return Record(job, Transfer{});
}

Result<Pipeline::Transfer> Pipeline::Upload(const Job& job, const buffer::LocalFile& file,
                                            ObjectStore& objects,
                                            const std::stop_token& stop) const {
  // The store finds an identical object already stored (and hashes the local
  // copy all the same), so no Stat goes first.
  auto started = std::chrono::steady_clock::now();
  auto put = objects.Upload(job.s3_key, file.fd(), file.size(), job.sha256, stop);
  if (!put) return put.error();
  stores_.ReportSuccess(job.storage_box_id);
  if (put->already_stored) return Transfer{};
  return Transfer{file.size(), std::chrono::steady_clock::now() - started};
}

Pipeline::StepResult Pipeline::Record(const Job& job, const Transfer& transfer) const {
  auto recorded = catalog_.RecordSync(job.sha256, job.file_size, job.storage_box_id);
  if (!recorded) {
    return StepFailure{recorded.error(),
                       recorded.error().IsJobFault() ? Source::kJob : Source::kCatalog};
  }
  Decision decision = Decision::Ack(*recorded == RecordOutcome::kSynced, job.s3_key);
  decision.bytes_uploaded = transfer.bytes;
  decision.upload_time = transfer.time;
  return decision;
}

Decision Pipeline::OnFailure(const Job& job, const Delivery& delivery,
                             const StepFailure& failure) const {
  const StoreRouter::BoxId& box = job.storage_box_id;
  // A local fault before any call to the store says nothing about the box.
  if (failure.source != Source::kStore) stores_.AbandonProbe(box);
  const Error& error = failure.error;
  if (error.kind == ErrorKind::kCancelled) return Decision::Release(error.message);
  if (error.IsJobFault()) return OnJobFault(job, delivery, error);
  if (failure.source == Source::kStore) {
    stores_.ReportFailure(box, error);
    return Decision::Defer(job.payload,
                           stores_.DownUntil(box).value_or(clock_() + std::chrono::seconds(1)),
                           error.message);
  }
  return Decision::Hold(error.message);
}

Decision Pipeline::Fail(const std::string& payload, const Error& error, int attempts) const {
  return Decision::Fail(FailedEntry(payload, error.message, attempts, clock_()), error.message,
                        error.fault);
}

Decision Pipeline::OnJobFault(const Job& job, const Delivery& delivery, const Error& error) const {
  int attempts = job.retry_count + 1 + static_cast<int>(delivery.redeliveries);
  if (error.kind == ErrorKind::kJobPermanent || job.retry_count >= settings_.max_retries) {
    return Fail(job.payload, error, attempts);
  }
  int next = job.retry_count + 1;
  return Decision::Retry(WithRetryCount(job.payload, next), clock_() + settings_.retry_delay * next,
                         error.message + " (retry " + std::to_string(next) + " of " +
                             std::to_string(settings_.max_retries) + " in " +
                             std::to_string((settings_.retry_delay * next).count()) + " s)",
                         error.fault);
}

}  // namespace media_sync
