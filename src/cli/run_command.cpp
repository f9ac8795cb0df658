// `media-sync run`: wires the real adapters (Redis, PostgreSQL, S3, the
// local buffer) into the pipeline and the worker, then waits for signals.
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX sigtimedwait, pthread_sigmask
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "audit/periodic_audit.h"
#include "buffer/local_buffer.h"
#include "catalog/pg_catalog.h"
#include "cli/command.h"
#include "core/pipeline.h"
#include "metrics/http_endpoint.h"
#include "metrics/process_metrics.h"
#include "metrics/registry.h"
#include "queue/box_pauses.h"
#include "queue/fleet_stats.h"
#include "queue/queue_admin.h"
#include "queue/queue_maintenance.h"
#include "queue/reconcile_lock.h"
#include "queue/redis_job_queue.h"
#include "queue/redis_upload_journal.h"
#include "s3/buffer_pool.h"
#include "s3/s3_errors.h"
#include "s3/s3_object_store.h"
#include "util/liveness.h"
#include "worker/box_registry.h"
#include "worker/bucket_creating_store.h"
#include "worker/monitor.h"
#include "worker/periodic_reconciler.h"
#include "worker/worker.h"

namespace media_sync::cli {
namespace {

// A multipart upload not continued for this long is abandoned for good: the
// start-up sweep aborts it, and its record in Redis has expired.
constexpr std::chrono::hours kAbandonedUploadAge{24};

struct RunFlags {
  int concurrency = 0;  // 0: SYNC_CONCURRENCY
  bool drain = false;
  std::string worker_id;
};

int Run(config::Options options, const RunFlags& flags) {
  if (flags.concurrency > 0) options.concurrency = flags.concurrency;
  if (!flags.worker_id.empty()) options.worker_id = flags.worker_id;
  if (auto status = options.RequireDatabase(); !status) return ConfigError(status.error());

  auto buffer = buffer::LocalBuffer::Create(options.buffer_path);
  if (!buffer) return ConfigError(buffer.error().Wrap("MEDIA_BUFFER_PATH"));

  queue::RedisOptions redis_options;
  queue::QueueAdmin admin(options.redis, redis_options);
  if (auto connected = admin.Connect(); !connected) {
    if (connected.error().kind == ErrorKind::kConfiguration) return ConfigError(connected.error());
    spdlog::warn("Redis not reachable yet ({}); the worker keeps trying",
                 connected.error().message);
  }

  catalog::PgCatalogOptions catalog_options;
  catalog_options.pool_size = options.db_pool_size;
  catalog::PgCatalog catalog(options.database_conninfo, catalog_options);
  // A database without the schema, or a role that may not read it, is the
  // operator's to fix before any job is taken.
  if (auto pinged = catalog.Ping(); !pinged) {
    if (pinged.error().kind == ErrorKind::kConfiguration) return ConfigError(pinged.error());
    spdlog::warn("PostgreSQL not reachable yet ({}); the worker keeps trying",
                 pinged.error().message);
  }
  // A platform's own media_files may lack the indexes our queries need: jobs
  // sync all the same, but every reconcile and status reads the whole table.
  auto schema_advice = [&catalog] {
    auto checks = catalog.CheckIndexes();
    return checks ? catalog::SchemaAdvice(*checks) : std::vector<std::string>();
  };
  for (const std::string& line : schema_advice()) spdlog::warn("{}", line);

  metrics::Registry metrics_registry;
  metrics::AddProcessMetrics(metrics_registry);
  metrics_registry
      .AddGauge("media_sync_build_info", "Version of this media-sync build.", {"version"})
      .With({MEDIA_SYNC_VERSION})
      .Set(1);
  worker::WorkerMetrics worker_metrics(metrics_registry);
  audit::AuditMetrics audit_metrics(metrics_registry);

  s3::BufferPool pool(options.s3.buffer_pool_bytes);
  // Multipart uploads are recorded beside the jobs, so that any worker
  // resumes one cut short; a record expires when the sweep below would
  // abort its upload.
  // Short timeouts: every job thread's uploads share its connection, and a
  // journal that does not answer costs a resumption, never the upload.
  queue::RedisOptions journal_options = redis_options;
  journal_options.connect_timeout = std::chrono::seconds(1);
  journal_options.command_timeout = std::chrono::seconds(2);
  auto journal = std::make_shared<queue::RedisUploadJournal>(options.redis, journal_options,
                                                             kAbandonedUploadAge);
  s3::S3ObjectStore::Hooks store_hooks;
  store_hooks.on_parts_reused = [&worker_metrics](int /*parts*/, uint64_t bytes) {
    worker_metrics.resumed_bytes.Inc(static_cast<double>(bytes));
  };
  auto factory = [&pool, journal,
                  store_hooks](const s3::S3Options& box) -> Result<std::shared_ptr<ObjectStore>> {
    auto store = std::make_shared<s3::S3ObjectStore>(box, pool, journal, store_hooks);
    return std::shared_ptr<ObjectStore>(std::make_shared<worker::BucketCreatingStore>(
        store,
        [store](const std::stop_token& stop) { return store->client().EnsureBucket(stop); }));
  };
  worker::BoxRegistry::Settings registry_settings;
  registry_settings.refresh = options.box_refresh;
  registry_settings.max_backoff = options.outage_backoff_max;
  registry_settings.max_in_flight = options.BoxMaxInFlight();
  registry_settings.threads = options.concurrency;
  worker::BoxRegistry registry(options.s3, catalog, factory, registry_settings);

  {
    // Multipart uploads nobody resumed for kAbandonedUploadAge are aborted
    // here (stores create their bucket on first use, see BucketCreatingStore);
    // one the journal still records is being continued, whatever its age.
    s3::S3ObjectStore default_store(options.s3, pool, journal);
    auto swept = default_store.SweepStaleUploads("media/", kAbandonedUploadAge);
    if (!swept && s3::IsUnsupportedOperation(swept.error())) {
      spdlog::info(
          "{} does not list multipart uploads: stale ones are left to the bucket's "
          "lifecycle rules",
          options.s3.endpoint);
    } else if (!swept) {
      spdlog::warn("start-up sweep of stale multipart uploads at {}: {}", options.s3.endpoint,
                   swept.error().message);
    } else if (*swept > 0) {
      spdlog::info("aborted {} stale multipart uploads", *swept);
    }
  }

  Pipeline pipeline(registry, catalog, *buffer,
                    PipelineSettings{options.max_retries, options.retry_delay});
  worker::WorkerSettings settings;
  settings.worker_id = options.worker_id;
  settings.concurrency = options.concurrency;
  settings.lease = options.lease;
  settings.outage_backoff_max = options.outage_backoff_max;
  settings.drain = flags.drain;

  spdlog::info("media-sync {} starting: worker {}, {} jobs in flight, buffer {}, bucket {} at {}",
               MEDIA_SYNC_VERSION, options.worker_id, options.concurrency, options.buffer_path,
               options.s3.bucket, options.s3.endpoint);
  if (options.s3.bandwidth_limit > 0) {
    spdlog::info("uploads capped at {} bytes/s in all (SYNC_BANDWIDTH_LIMIT)",
                 options.s3.bandwidth_limit);
  }
  auto started = std::chrono::steady_clock::now();
  Liveness liveness;
  worker::QueueFactories queues{
      [&] {
        return std::unique_ptr<JobQueue>(std::make_unique<queue::RedisJobQueue>(
            options.redis, options.worker_id, redis_options));
      },
      [&] {
        queue::MaintenanceOptions maintenance{options.lease, redis_options};
        return std::unique_ptr<QueueUpkeep>(std::make_unique<queue::QueueMaintenance>(
            options.redis, options.worker_id, maintenance));
      }};
  worker::Worker worker(settings, std::move(queues), pipeline, worker_metrics, liveness);

  worker::MonitorSettings monitor_settings;
  monitor_settings.worker_id = options.worker_id;
  monitor_settings.buffer_path = options.buffer_path;
  monitor_settings.stall_limit = options.health_stall;
  monitor_settings.schema_advice = schema_advice;
  // The monitor's own Redis connections.
  worker::MonitorSources monitor_sources{
      std::make_unique<queue::QueueAdmin>(options.redis, redis_options),
      std::make_unique<queue::FleetStats>(options.redis, redis_options),
      std::make_unique<queue::BoxPauses>(options.redis, redis_options)};
  worker::Monitor monitor(
      monitor_settings, std::move(monitor_sources), worker_metrics, registry,
      [&catalog] { return catalog.Ping(); }, liveness);
  std::unique_ptr<metrics::HttpEndpoint> endpoint;
  if (!options.metrics_address.empty()) {
    auto started_endpoint = metrics::HttpEndpoint::Start(
        options.metrics_address,
        {[&metrics_registry] { return metrics_registry.Render(); },
         [&monitor] { return monitor.Health(); }, [&monitor] { return monitor.Readiness(); }});
    if (!started_endpoint) return ConfigError(started_endpoint.error());
    endpoint = std::move(*started_endpoint);
    spdlog::info("serving /metrics, /healthz and /readyz on {} (port {})", options.metrics_address,
                 endpoint->port());
  }
  monitor.Start();
  worker.Start();
  // The reconcile's own Redis connections, used on its thread only.
  queue::QueueAdmin reconcile_queue(options.redis, redis_options);
  queue::ReconcileLock reconcile_lock(options.redis, options.worker_id, redis_options);
  worker::PeriodicReconciler reconciler(
      worker::PeriodicReconcilerSettings::FromOptions(options),
      {reconcile_queue, reconcile_queue, catalog, registry, *buffer}, reconcile_lock);
  audit::PeriodicAudit audit(audit::PeriodicAuditSettings::FromOptions(options), audit_metrics);

  // SIGTERM/SIGINT are blocked in every thread (see Main): this thread takes
  // them. First: stop taking jobs, finish in-flight work within the grace
  // period. Second, or grace over: hand everything back at once.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  std::optional<std::chrono::steady_clock::time_point> grace_deadline;
  bool cancelled = false;
  while (!worker.Finished()) {
    timespec tick{0, 200'000'000};
    int signal = sigtimedwait(&signals, nullptr, &tick);
    if (signal == SIGTERM || signal == SIGINT) {
      if (!grace_deadline) {
        spdlog::info("{} received: finishing in-flight jobs (up to {} s), send again to stop now",
                     strsignal(signal), options.shutdown_grace.count());
        grace_deadline = std::chrono::steady_clock::now() + options.shutdown_grace;
        worker.RequestStop();
      } else if (!cancelled) {
        spdlog::warn("second signal: handing in-flight jobs back now");
        worker.Cancel();
        cancelled = true;
      }
    }
    if (grace_deadline && !cancelled && std::chrono::steady_clock::now() >= *grace_deadline) {
      spdlog::warn("grace period over: handing in-flight jobs back");
      worker.Cancel();
      cancelled = true;
    }
  }
  audit.Stop();
  reconciler.Stop();
  worker.Wait();

  const worker::WorkerMetrics::Totals totals = worker_metrics.ReadTotals();
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf(
      "summary: synced %llu, already synced %llu, failed %llu, retries scheduled %llu, "
      "deferred %llu, bytes %llu, seconds %.2f, files/s %.1f, MB/s %.1f\n",
      static_cast<unsigned long long>(totals.synced),
      static_cast<unsigned long long>(totals.already_synced),
      static_cast<unsigned long long>(totals.failed),
      static_cast<unsigned long long>(totals.retries_scheduled),
      static_cast<unsigned long long>(totals.deferred),
      static_cast<unsigned long long>(totals.bytes_uploaded), seconds,
      seconds > 0 ? static_cast<double>(totals.synced + totals.already_synced) / seconds : 0.0,
      seconds > 0 ? static_cast<double>(totals.bytes_uploaded) / seconds / 1e6 : 0.0);
  std::fflush(stdout);
  spdlog::info("media-sync stopped");
  return kExitOk;
}

}  // namespace

Command AddRunCommand(CLI::App& app) {
  auto flags = std::make_shared<RunFlags>();
  Command command;
  command.app = app.add_subcommand(
      "run", "Run the worker: take jobs from media:sync:pending, upload, verify, record, delete.");
  command.app
      ->add_option("--concurrency", flags->concurrency,
                   "Jobs in flight in this process (default: SYNC_CONCURRENCY)")
      ->check(CLI::Range(1, 1024));
  command.app->add_flag(
      "--drain", flags->drain,
      "Exit 0 once no job is pending, delayed or held by any worker; print a summary");
  command.app->add_option("--worker-id", flags->worker_id, "Worker id (default: WORKER_ID)");
  command.app->footer(
      "Examples:\n"
      "  media-sync run                      # the service; stop with SIGTERM\n"
      "  media-sync run --drain --concurrency 64   # a backfill: exit once the queue is empty");
  command.run = [flags](const config::Options& options) {
    // Block the shutdown signals before any thread starts, so that only the
    // main thread receives them (with sigtimedwait).
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    return Run(options, *flags);
  };
  return command;
}

}  // namespace media_sync::cli
