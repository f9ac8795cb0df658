#include "cli/cli.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "buffer/local_buffer.h"
#include "catalog/pg_catalog.h"
#include "config/options.h"
#include "core/job.h"
#include "core/pipeline.h"
#include "queue/queue_admin.h"
#include "s3/buffer_pool.h"
#include "s3/s3_object_store.h"
#include "util/fd.h"
#include "util/hash.h"
#include "util/log.h"
#include "worker/box_registry.h"
#include "worker/bucket_creating_store.h"
#include "worker/worker.h"

namespace media_sync::cli {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

int ConfigError(const Error& error) {
  std::fprintf(stderr, "media-sync: configuration error: %s\n", error.message.c_str());
  return kExitUsage;
}

int Failed(const std::string& what, const Error& error) {
  std::fprintf(stderr, "media-sync: %s: %s\n", what.c_str(), error.message.c_str());
  return kExitFailed;
}

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

  s3::BufferPool pool(options.s3.buffer_pool_bytes);
  auto factory = [&pool](const s3::S3Options& box) -> Result<std::shared_ptr<ObjectStore>> {
    auto store = std::make_shared<s3::S3ObjectStore>(box, pool);
    return std::shared_ptr<ObjectStore>(std::make_shared<worker::BucketCreatingStore>(
        store, [store](std::stop_token stop) { return store->client().EnsureBucket(stop); }));
  };
  worker::BoxRegistry::Settings registry_settings;
  registry_settings.refresh = options.box_refresh;
  registry_settings.max_backoff = options.outage_backoff_max;
  worker::BoxRegistry registry(options.s3, catalog, factory, registry_settings);

  {
    // Multipart uploads of a worker that died are aborted here (stores
    // create their bucket on first use, see BucketCreatingStore).
    s3::S3ObjectStore default_store(options.s3, pool);
    auto swept = default_store.SweepStaleUploads("media/", std::chrono::hours(24));
    if (!swept && swept.error().message.find("NotImplemented") != std::string::npos) {
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
  settings.redis = options.redis;
  settings.redis_options = redis_options;
  settings.worker_id = options.worker_id;
  settings.concurrency = options.concurrency;
  settings.lease = options.lease;
  settings.outage_backoff_max = options.outage_backoff_max;
  settings.drain = flags.drain;

  spdlog::info("media-sync {} starting: worker {}, {} jobs in flight, buffer {}, bucket {} at {}",
               MEDIA_SYNC_VERSION, options.worker_id, options.concurrency, options.buffer_path,
               options.s3.bucket, options.s3.endpoint);
  auto started = std::chrono::steady_clock::now();
  worker::Worker worker(settings, pipeline);
  worker.Start();

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
  worker.Wait();

  const auto& stats = worker.stats();
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  uint64_t synced = stats.synced.load();
  std::printf(
      "summary: synced %llu, already synced %llu, failed %llu, retries scheduled %llu, "
      "deferred %llu, bytes %llu, seconds %.2f, files/s %.1f, MB/s %.1f\n",
      static_cast<unsigned long long>(synced),
      static_cast<unsigned long long>(stats.already_synced.load()),
      static_cast<unsigned long long>(stats.failed.load()),
      static_cast<unsigned long long>(stats.retries_scheduled.load()),
      static_cast<unsigned long long>(stats.deferred.load()),
      static_cast<unsigned long long>(stats.bytes_uploaded.load()), seconds,
      seconds > 0 ? static_cast<double>(synced + stats.already_synced.load()) / seconds : 0.0,
      seconds > 0 ? static_cast<double>(stats.bytes_uploaded.load()) / seconds / 1e6 : 0.0);
  std::fflush(stdout);
  spdlog::info("media-sync stopped");
  return kExitOk;
}

int Status(const config::Options& options, bool json) {
  queue::QueueAdmin admin(options.redis);
  auto counts = admin.Counts();
  if (!counts) return Failed("status", counts.error());
  auto next_due = admin.NextDue();
  Json out{{"pending", counts->pending},
           {"delayed", counts->delayed},
           {"failed", counts->failed},
           {"processing", counts->processing},
           {"processing_by_worker", counts->processing_by_worker},
           {"live_workers", counts->live_workers}};
  if (next_due && next_due->has_value()) out["next_retry_due"] = IsoTimestamp(**next_due);
  if (!options.database_url.empty()) {
    catalog::PgCatalog catalog(options.database_conninfo, {});
    auto unsynced = catalog.CountUnsynced();
    if (unsynced) {
      out["unsynced_rows"] = *unsynced;
    } else {
      out["unsynced_rows_error"] = unsynced.error().message;
    }
  }
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("pending     %lld\n", static_cast<long long>(counts->pending));
  std::printf("delayed     %lld", static_cast<long long>(counts->delayed));
  if (out.contains("next_retry_due")) {
    std::printf(" (next due %s)", out["next_retry_due"].get<std::string>().c_str());
  }
  std::printf("\nfailed      %lld\n", static_cast<long long>(counts->failed));
  std::printf("processing  %lld\n", static_cast<long long>(counts->processing));
  for (const auto& [worker, held] : counts->processing_by_worker) {
    bool live = std::find(counts->live_workers.begin(), counts->live_workers.end(), worker) !=
                counts->live_workers.end();
    std::printf("  %-40s %lld%s\n", worker.c_str(), static_cast<long long>(held),
                live ? "" : " (lease expired)");
  }
  std::printf("workers     %zu live\n", counts->live_workers.size());
  if (out.contains("unsynced_rows")) {
    std::printf("unsynced    %lld media_files rows\n",
                static_cast<long long>(out["unsynced_rows"].get<int64_t>()));
  }
  return kExitOk;
}

// A job for a file already in the buffer: hashes it and derives key and size.
Result<std::string> JobForFile(const std::string& path, const std::optional<std::string>& box) {
  std::string absolute = path;
  if (absolute.empty() || absolute.front() != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) return Error::JobPermanent("getcwd failed");
    absolute = std::string(cwd) + "/" + path;
  }
  UniqueFd fd(open(absolute.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return Error::JobPermanent(path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Error::JobPermanent(path + ": not a regular file");
  }
  auto sha = Sha256OfFd(fd.get(), static_cast<uint64_t>(st.st_size));
  if (!sha) return sha.error().Wrap(path);
  auto slash = absolute.rfind('/');
  auto dot = absolute.rfind('.');
  std::string ext = dot != std::string::npos && dot > slash ? absolute.substr(dot + 1) : "";
  Json job{{"sha256", *sha},
           {"s3_key", ContentKey(*sha, ext)},
           {"local_path", absolute},
           {"storage_box_id", box ? Json(*box) : Json(nullptr)},
           {"file_size", static_cast<uint64_t>(st.st_size)},
           {"queued_at", IsoTimestamp(std::chrono::system_clock::now())},
           {"retry_count", 0}};
  return job.dump();
}

int Enqueue(const config::Options& options, const std::vector<std::string>& files,
            const std::string& jobs_file, const std::optional<std::string>& box) {
  std::vector<std::string> payloads;
  for (const auto& file : files) {
    auto job = JobForFile(file, box);
    if (!job) return Failed("enqueue", job.error());
    payloads.push_back(std::move(*job));
  }
  if (!jobs_file.empty()) {
    std::ifstream stream;
    std::istream* in = &std::cin;
    if (jobs_file != "-") {
      stream.open(jobs_file);
      if (!stream) return Failed("enqueue", Error::JobPermanent("cannot read " + jobs_file));
      in = &stream;
    }
    std::string line;
    int number = 0;
    while (std::getline(*in, line)) {
      ++number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (auto job = ParseJob(line); !job) {
        return Failed("enqueue", job.error().Wrap("line " + std::to_string(number)));
      }
      payloads.push_back(line);
    }
  }
  if (payloads.empty()) {
    std::fprintf(stderr, "media-sync: enqueue: no jobs given (FILE... or --jobs)\n");
    return kExitUsage;
  }
  queue::QueueAdmin admin(options.redis);
  if (auto pushed = admin.Enqueue(payloads); !pushed) return Failed("enqueue", pushed.error());
  std::printf("enqueued %zu jobs onto media:sync:pending\n", payloads.size());
  return kExitOk;
}

int Reconcile(const config::Options& options, int older_than, int limit, bool dry_run) {
  if (auto status = options.RequireDatabase(); !status) return ConfigError(status.error());
  catalog::PgCatalog catalog(options.database_conninfo, {});
  auto rows = catalog.Unsynced(limit, older_than);
  if (!rows) return Failed("reconcile", rows.error());
  std::vector<std::string> payloads;
  for (const auto& row : *rows) {
    // The platform's buffer layout: the file sits at <buffer>/<s3_key>.
    Json job{{"sha256", row.sha256},
             {"s3_key", row.s3_key},
             {"local_path", options.buffer_path + "/" + row.s3_key},
             {"storage_box_id", row.storage_box_id ? Json(*row.storage_box_id) : Json(nullptr)},
             {"file_size", row.file_size},
             {"queued_at", IsoTimestamp(std::chrono::system_clock::now())},
             {"retry_count", 0}};
    payloads.push_back(job.dump());
    if (dry_run) std::printf("%s\n", payloads.back().c_str());
  }
  if (!dry_run && !payloads.empty()) {
    queue::QueueAdmin admin(options.redis);
    if (auto pushed = admin.Enqueue(payloads); !pushed) return Failed("reconcile", pushed.error());
  }
  std::printf("%s %zu unsynced rows older than %d s\n", dry_run ? "would enqueue" : "enqueued",
              payloads.size(), older_than);
  return kExitOk;
}

int FailedList(const config::Options& options, int64_t limit) {
  queue::QueueAdmin admin(options.redis);
  auto entries = admin.ListFailed(0, limit);
  if (!entries) return Failed("failed list", entries.error());
  for (const auto& entry : *entries) std::printf("%s\n", entry.c_str());
  return kExitOk;
}

int FailedRequeue(const config::Options& options, int64_t count) {
  queue::QueueAdmin admin(options.redis);
  auto moved = admin.RequeueFailed(count);
  if (!moved) return Failed("failed requeue", moved.error());
  std::printf("requeued %lld failed jobs onto media:sync:pending\n",
              static_cast<long long>(*moved));
  return kExitOk;
}

int PrintConfig(const config::Options& options) {
  for (const auto& [name, value] : config::Describe(options)) {
    std::printf("%-28s %s\n", name.c_str(), value.c_str());
  }
  return kExitOk;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{
      "media-sync: moves media files from the local SSD buffer to S3-compatible storage.\n"
      "Configuration comes from the environment (see `media-sync config`)."};
  app.set_version_flag("--version", std::string("media-sync ") + MEDIA_SYNC_VERSION);
  app.require_subcommand(1);

  RunFlags run_flags;
  auto* run = app.add_subcommand(
      "run", "Run the worker: take jobs from media:sync:pending, upload, verify, record, delete.");
  run->add_option("--concurrency", run_flags.concurrency,
                  "Jobs in flight in this process (default: SYNC_CONCURRENCY)")
      ->check(CLI::Range(1, 1024));
  run->add_flag("--drain", run_flags.drain,
                "Exit 0 once no job is pending, delayed or held by any worker; print a summary");
  run->add_option("--worker-id", run_flags.worker_id, "Worker id (default: WORKER_ID)");

  bool status_json = false;
  auto* status = app.add_subcommand(
      "status", "Show queue depths, held jobs per worker, live workers and unsynced rows.");
  status->add_flag("--json", status_json, "Print JSON");

  std::vector<std::string> enqueue_files;
  std::string enqueue_jobs;
  std::string enqueue_box;
  auto* enqueue = app.add_subcommand(
      "enqueue", "Push sync jobs: for files already in the buffer, or JSON lines of jobs.");
  enqueue->add_option("files", enqueue_files, "Files in the buffer (hashed to build each job)");
  enqueue->add_option("--jobs", enqueue_jobs, "File of JSON job lines ('-' for stdin), validated");
  enqueue->add_option("--box", enqueue_box, "storage_box_id for the FILE jobs");

  int reconcile_older = 3600;
  int reconcile_limit = 10000;
  bool reconcile_dry = false;
  auto* reconcile = app.add_subcommand(
      "reconcile", "Re-enqueue media_files rows never synced (their jobs were lost).");
  reconcile->add_option("--older-than", reconcile_older, "Only rows created this many seconds ago")
      ->check(CLI::NonNegativeNumber);
  reconcile->add_option("--limit", reconcile_limit, "At most this many rows")
      ->check(CLI::PositiveNumber);
  reconcile->add_flag("--dry-run", reconcile_dry, "Print the jobs instead of pushing them");

  int64_t failed_limit = 20;
  int64_t requeue_count = 1;
  auto* failed = app.add_subcommand("failed", "Inspect or requeue the failed queue.");
  failed->require_subcommand(1);
  auto* failed_list = failed->add_subcommand("list", "Print failed entries (newest first).");
  failed_list->add_option("--limit", failed_limit, "How many entries")->check(CLI::PositiveNumber);
  auto* failed_requeue = failed->add_subcommand(
      "requeue", "Move failed entries back to pending (oldest first), with a fresh retry budget.");
  failed_requeue->add_option("--count", requeue_count, "How many entries (0: all)")
      ->check(CLI::NonNegativeNumber);

  auto* config_cmd =
      app.add_subcommand("config", "Print the effective configuration, secrets masked.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  auto options = config::LoadOptions(config::ProcessEnvironment());
  if (!options) return ConfigError(options.error());
  SetupLogging(options->log_level, options->log_format == config::LogFormat::kJson);
  signal(SIGPIPE, SIG_IGN);

  if (run->parsed()) {
    // Block the shutdown signals before any thread starts, so that only the
    // main thread receives them (with sigtimedwait).
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    return Run(*options, run_flags);
  }
  if (status->parsed()) return Status(*options, status_json);
  if (enqueue->parsed()) {
    std::optional<std::string> box;
    if (!enqueue_box.empty()) box = enqueue_box;
    return Enqueue(*options, enqueue_files, enqueue_jobs, box);
  }
  if (reconcile->parsed()) {
    return Reconcile(*options, reconcile_older, reconcile_limit, reconcile_dry);
  }
  if (failed_list->parsed()) return FailedList(*options, failed_limit);
  if (failed_requeue->parsed()) {
    return FailedRequeue(*options, requeue_count == 0 ? INT64_MAX : requeue_count);
  }
  if (config_cmd->parsed()) return PrintConfig(*options);
  return kExitUsage;
}

}  // namespace media_sync::cli
