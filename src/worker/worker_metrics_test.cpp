// The process's one count of outcomes: what RecordOutcome counts is what
// ReadTotals (the Monitor's throughput, run's drain summary) and /metrics
// both show.
#include "worker/worker_metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace media_sync::worker {
namespace {

using Outcome = Decision::Outcome;

Decision Finished(Outcome outcome, const std::optional<std::string>& box, uint64_t bytes) {
  Decision decision;
  decision.outcome = outcome;
  decision.storage_box_id = box;
  decision.bytes_uploaded = bytes;
  decision.fault = FaultClass::kHashMismatch;
  return decision;
}

TEST(WorkerMetricsTest, TotalsAreTheCountersOfEveryOutcomeAndTheBytesOfEveryBox) {
  metrics::Registry registry;
  WorkerMetrics metrics(registry);
  const auto now = std::chrono::system_clock::now();
  metrics.RecordOutcome(Finished(Outcome::kSynced, "box-a", 100), now);
  metrics.RecordOutcome(Finished(Outcome::kSynced, std::nullopt, 20), now);
  metrics.RecordOutcome(Finished(Outcome::kAlreadySynced, "box-a", 3), now);
  metrics.RecordOutcome(Finished(Outcome::kRetryScheduled, "box-b", 0), now);
  metrics.RecordOutcome(Finished(Outcome::kFailed, "box-b", 0), now);
  metrics.RecordOutcome(Finished(Outcome::kFailed, "box-b", 0), now);
  metrics.RecordOutcome(Finished(Outcome::kBoxDown, "box-b", 0), now);
  metrics.RecordOutcome(Finished(Outcome::kCancelled, "box-a", 0), now);

  WorkerMetrics::Totals totals = metrics.ReadTotals();
  EXPECT_EQ(totals.synced, 2u);
  EXPECT_EQ(totals.already_synced, 1u);
  EXPECT_EQ(totals.retries_scheduled, 1u);
  EXPECT_EQ(totals.failed, 2u);
  EXPECT_EQ(totals.deferred, 1u);
  EXPECT_EQ(totals.bytes_uploaded, 123u);

  // The same numbers an operator scrapes.
  std::string text = registry.Render();
  EXPECT_NE(text.find("media_sync_jobs_total{outcome=\"synced\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("media_sync_jobs_total{outcome=\"failed\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("media_sync_uploaded_bytes_total{box=\"box-a\"} 103\n"), std::string::npos);
  EXPECT_NE(text.find("media_sync_uploaded_bytes_total{box=\"default\"} 20\n"), std::string::npos);
}

TEST(WorkerMetricsTest, TotalsStartAtZero) {
  metrics::Registry registry;
  WorkerMetrics metrics(registry);
  WorkerMetrics::Totals totals = metrics.ReadTotals();
  EXPECT_EQ(totals.synced + totals.already_synced + totals.retries_scheduled + totals.failed +
                totals.deferred + totals.bytes_uploaded,
            0u);
}

}  // namespace
}  // namespace media_sync::worker
