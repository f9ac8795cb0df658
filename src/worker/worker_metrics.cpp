#include "worker/worker_metrics.h"

namespace media_sync::worker {
namespace {

using metrics::ExponentialBuckets;
using Outcome = Decision::Outcome;

}  // namespace

std::string BoxLabel(const std::optional<std::string>& storage_box_id) {
  return storage_box_id.value_or("default");
}

std::string_view OutcomeLabel(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSynced:
      return "synced";
    case Outcome::kAlreadySynced:
      return "already_synced";
    case Outcome::kRetryScheduled:
      return "retry";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kBoxDown:
      return "deferred";
    case Outcome::kServiceDown:
    case Outcome::kCancelled:
      return "released";
  }
  return "released";
}

WorkerMetrics::WorkerMetrics(metrics::Registry& registry)
    : jobs_in_flight(
          registry.AddGauge("media_sync_jobs_in_flight", "Jobs this process is working on.")
              .Only()),
      queue_jobs(registry.AddGauge("media_sync_queue_jobs",
                                   "Jobs in each queue (queue-wide, read from Redis).", {"queue"})),
      oldest_pending_age(registry
                             .AddGauge("media_sync_oldest_pending_job_age_seconds",
                                       "Age of the job served next, from its queued_at "
                                       "(0 when nothing is pending).")
                             .Only()),
      live_workers(registry
                       .AddGauge("media_sync_live_workers",
                                 "Workers whose lease is live (queue-wide, read from Redis).")
                       .Only()),
      box_up(registry.AddGauge("media_sync_box_up",
                               "1 when the storage box answered its last request, 0 while it is "
                               "marked down.",
                               {"box"})),
      box_paused(registry.AddGauge("media_sync_box_paused",
                                   "1 while an operator has the box paused (`media-sync boxes "
                                   "pause`), with the reason given; 0 once resumed.",
                                   {"box", "reason"})),
      box_limit(registry.AddGauge("media_sync_box_concurrency_limit",
                                  "Uploads the storage box may have in flight now: its adaptive "
                                  "limit, between 1 and BOX_MAX_IN_FLIGHT.",
                                  {"box"})),
      box_in_flight(registry.AddGauge("media_sync_box_in_flight",
                                      "Uploads (and checks) in flight to the storage box.",
                                      {"box"})),
      box_latency(registry.AddGauge("media_sync_box_latency_seconds",
                                    "Moving average of how long the storage box's recent uploads "
                                    "took, all sizes.",
                                    {"box"})),
      box_latency_ratio(registry.AddGauge(
          "media_sync_box_latency_ratio",
          "The storage box's recent upload latency over its no-load latency (per size class): "
          "above the tolerance (2) its limit shrinks.",
          {"box"})),
      s3_requests(registry.AddCounter("media_sync_s3_requests_total",
                                      "HTTP requests sent to the storage box.", {"box"})),
      s3_connections(registry.AddCounter("media_sync_s3_connections_total",
                                         "New connections opened to the storage box (the other "
                                         "requests reused one).",
                                         {"box"})),
      s3_tls_handshakes(registry.AddCounter("media_sync_s3_tls_handshakes_total",
                                            "TLS handshakes with the storage box (resumed "
                                            "sessions included).",
                                            {"box"})),
      redis_up(
          registry.AddGauge("media_sync_redis_up", "1 when Redis answered the last check.").Only()),
      postgres_up(
          registry.AddGauge("media_sync_postgres_up", "1 when PostgreSQL answered the last check.")
              .Only()),
      buffer_up(
          registry
              .AddGauge("media_sync_buffer_up",
                        "1 when MEDIA_BUFFER_PATH was a readable directory at the last check.")
              .Only()),
      resumed_bytes(registry
                        .AddCounter("media_sync_upload_resumed_bytes_total",
                                    "Bytes of resumed multipart uploads that were already "
                                    "stored and not sent again.")
                        .Only()),
      jobs_(registry.AddCounter("media_sync_jobs_total", "Job deliveries finished, by outcome.",
                                {"outcome"})),
      faults_(registry.AddCounter("media_sync_job_faults_total",
                                  "Job faults, by what was done (retry or failed) and class.",
                                  {"outcome", "class"})),
      bytes_(registry.AddCounter("media_sync_uploaded_bytes_total",
                                 "Bytes uploaded to storage, by box.", {"box"})),
      files_(registry.AddCounter("media_sync_files_synced_total",
                                 "Files recorded as synced by this process, by box.", {"box"})),
      upload_time_(registry.AddHistogram("media_sync_upload_duration_seconds",
                                         "Time to upload and verify one file, by box.", {"box"},
                                         ExponentialBuckets(0.005, 2.5, 12))),
      job_time_(registry
                    .AddHistogram("media_sync_job_duration_seconds",
                                  "Time from a job's queued_at to its sync (end to end).", {},
                                  ExponentialBuckets(0.1, 3, 12))
                    .Only()) {
  // Present from the first scrape, so rate() and absence alerts work.
  for (auto outcome : {Outcome::kSynced, Outcome::kAlreadySynced, Outcome::kRetryScheduled,
                       Outcome::kFailed, Outcome::kBoxDown, Outcome::kCancelled}) {
    jobs_.With({OutcomeLabel(outcome)});
  }
  for (std::string_view queue : {"pending", "delayed", "failed", "processing"}) {
    queue_jobs.With({queue});
  }
}

void WorkerMetrics::RecordOutcome(const Decision& decision,
                                  std::chrono::system_clock::time_point now) {
  jobs_.With({OutcomeLabel(decision.outcome)}).Inc();
  std::string box = BoxLabel(decision.storage_box_id);
  switch (decision.outcome) {
    case Outcome::kRetryScheduled:
    case Outcome::kFailed:
      faults_.With({OutcomeLabel(decision.outcome), ToString(decision.fault)}).Inc();
      break;
    case Outcome::kSynced:
      files_.With({box}).Inc();
      if (decision.queued_at && *decision.queued_at <= now) {
        job_time_.Observe(std::chrono::duration<double>(now - *decision.queued_at).count());
      }
      break;
    default:
      break;
  }
  if (decision.bytes_uploaded > 0) {
    bytes_.With({box}).Inc(static_cast<double>(decision.bytes_uploaded));
    upload_time_.With({box}).Observe(std::chrono::duration<double>(decision.upload_time).count());
  }
}

WorkerMetrics::Totals WorkerMetrics::ReadTotals() const {
  // Counters hold doubles: whole numbers are exact up to 2^53, far beyond
  // what one process syncs or uploads.
  auto count = [this](Outcome outcome) {
    return static_cast<uint64_t>(jobs_.With({OutcomeLabel(outcome)}).Value());
  };
  Totals totals;
  totals.synced = count(Outcome::kSynced);
  totals.already_synced = count(Outcome::kAlreadySynced);
  totals.retries_scheduled = count(Outcome::kRetryScheduled);
  totals.failed = count(Outcome::kFailed);
  totals.deferred = count(Outcome::kBoxDown);
  bytes_.ForEach([&totals](const std::vector<std::string>& /*box*/, const metrics::Counter& bytes) {
    totals.bytes_uploaded += static_cast<uint64_t>(bytes.Value());
  });
  const std::string failed(OutcomeLabel(Outcome::kFailed));
  const std::string retried(OutcomeLabel(Outcome::kRetryScheduled));
  faults_.ForEach([&](const std::vector<std::string>& labels, const metrics::Counter& count) {
    // {outcome, class}
    const auto value = static_cast<uint64_t>(count.Value());
    if (labels[0] == failed) totals.failed_by_class[labels[1]] += value;
    if (labels[0] == retried) totals.retried_by_class[labels[1]] += value;
  });
  return totals;
}

}  // namespace media_sync::worker
