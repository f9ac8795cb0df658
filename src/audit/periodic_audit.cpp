#include "audit/periodic_audit.h"

#include <spdlog/spdlog.h>

#include <random>
#include <utility>

#include "queue/box_pauses.h"

namespace media_sync::audit {
namespace {

// Problems logged one by one per pass; the rest are counted
// (`media-sync audit` lists them all).
constexpr int kProblemsLogged = 20;
// The last full pass's counts, in the record's counts, by class name.
constexpr std::string_view kCheckedCount = "checked";

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

PeriodicAuditSettings PeriodicAuditSettings::FromOptions(const config::Options& options) {
  PeriodicAuditSettings settings;
  settings.interval = options.audit_interval;
  settings.rate = options.audit_rate;
  settings.deep = options.audit_deep;
  settings.worker_id = options.worker_id;
  settings.redis = options.redis;
  settings.defaults = options.s3;
  settings.database_conninfo = options.database_conninfo;
  return settings;
}

AuditMetrics::AuditMetrics(metrics::Registry& registry)
    : objects_checked(registry
                          .AddCounter("media_sync_audit_objects_checked_total",
                                      "Objects and rows the background audit of this process "
                                      "checked.")
                          .Only()),
      problems_found(registry.AddCounter("media_sync_audit_problems_found_total",
                                         "Problems the background audit of this process found, "
                                         "by class.",
                                         {"class"})),
      last_pass_problems(registry.AddGauge(
          "media_sync_audit_problems",
          "Problems the last full pass of the background audit found, by class (fleet-wide, "
          "read from Redis).",
          {"class"})),
      last_pass_end(registry
                        .AddGauge("media_sync_audit_last_pass_timestamp_seconds",
                                  "When the last full pass of the background audit ended, in "
                                  "unix seconds (fleet-wide; 0: none yet).")
                        .Only()) {
  for (ProblemClass kind : kProblemClasses) {
    problems_found.With({ToString(kind)});
    last_pass_problems.With({ToString(kind)});
  }
}

PeriodicAudit::PeriodicAudit(PeriodicAuditSettings settings, AuditMetrics& metrics)
    : settings_(std::move(settings)),
      metrics_(metrics),
      catalog_(settings_.database_conninfo, 1),
      lock_(settings_.redis, settings_.worker_id, {},
            queue::LockKeys{std::string(queue::kAuditLockKey), std::string(queue::kAuditDoneKey)}),
      progress_(settings_.redis) {
  if (settings_.interval.count() <= 0) return;
  spdlog::info("background audit of stored data every {} s, at most {} objects/s{}",
               settings_.interval.count(), settings_.rate,
               settings_.deep ? ", each read back (AUDIT_DEEP)" : "");
  thread_ = std::jthread([this](const std::stop_token& stop) { Loop(stop); });
}

PeriodicAudit::~PeriodicAudit() { Stop(); }

void PeriodicAudit::Stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
}

void PeriodicAudit::Loop(const std::stop_token& stop) {
  std::mt19937_64 random{std::random_device{}()};
  const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.interval);
  std::uniform_int_distribution<int64_t> jitter(0, interval.count() / 10);
  const auto refresh = std::min(settings_.refresh, interval);
  auto next_pass =
      std::chrono::steady_clock::now() + interval + std::chrono::milliseconds(jitter(random));
  ReadLastPass();
  while (!stop.stop_requested()) {
    {
      std::unique_lock lock(mu_);
      auto until = std::min(next_pass, std::chrono::steady_clock::now() + refresh);
      // Returns early only when a stop is requested (the predicate never holds).
      wake_.wait_until(lock, stop, until, [] { return false; });
    }
    if (stop.stop_requested()) return;
    if (std::chrono::steady_clock::now() >= next_pass) {
      RunPass(stop);
      next_pass =
          std::chrono::steady_clock::now() + interval + std::chrono::milliseconds(jitter(random));
    }
    ReadLastPass();
  }
}

void PeriodicAudit::ReadLastPass() {
  auto last = progress_.Load(queue::kAuditLastPassKey);
  if (!last) {
    spdlog::debug("audit: cannot read the last pass: {}", last.error().message);
    return;
  }
  if (!last->has_value()) return;
  metrics_.last_pass_end.Set(static_cast<double>((*last)->finished_at));
  for (ProblemClass kind : kProblemClasses) {
    auto it = (*last)->counts.find(std::string(ToString(kind)));
    metrics_.last_pass_problems.With({ToString(kind)})
        .Set(it == (*last)->counts.end() ? 0 : static_cast<double>(it->second));
  }
}

Status PeriodicAudit::Pace(const std::stop_token& stop) {
  using std::chrono::steady_clock;
  metrics_.objects_checked.Inc();
  auto now = steady_clock::now();
  if (now - lock_renewed_ >= settings_.lock_ttl / 3) {
    auto extended = lock_.Extend(settings_.lock_ttl);
    if (!extended) return extended.error();
    if (!*extended) return Error::Cancelled("the audit lock expired and was lost");
    lock_renewed_ = now;
  }
  // One slot per object; a run that fell behind (a slow request) may catch
  // up by a second's worth, no more.
  const auto step =
      std::chrono::duration_cast<steady_clock::duration>(std::chrono::seconds(1)) / settings_.rate;
  next_slot_ = std::max(next_slot_ + step, now - std::chrono::seconds(1));
  if (next_slot_ > now) {
    std::unique_lock lock(mu_);
    wake_.wait_until(lock, stop, next_slot_, [] { return false; });
  }
  if (stop.stop_requested()) return Error::Cancelled("audit stopped");
  return Ok();
}

void PeriodicAudit::RunPass(const std::stop_token& stop) {
  auto acquired = lock_.TryAcquire(settings_.lock_ttl);
  if (!acquired) {
    spdlog::warn("audit: cannot take the lock: {}", acquired.error().message);
    return;
  }
  if (*acquired != queue::ReconcileLock::Acquired::kYes) {
    spdlog::debug("audit: another worker audits now, or did lately; skipping this round");
    return;
  }
  lock_renewed_ = std::chrono::steady_clock::now();
  next_slot_ = lock_renewed_;

  auto release = [&](bool full_pass) {
    auto quiet = full_pass
                     ? std::chrono::duration_cast<std::chrono::milliseconds>(settings_.interval / 2)
                     : std::chrono::milliseconds(0);
    if (auto released = lock_.Release(quiet); !released) {
      spdlog::warn("audit: cannot release the lock (it expires by itself): {}",
                   released.error().message);
    }
  };
  auto boxes = catalog_.Boxes();
  auto without_box = boxes ? catalog_.AnyRowWithoutBox() : Result<bool>(boxes.error());
  if (!without_box) {
    spdlog::warn("audit: {}", without_box.error().message);
    release(false);
    return;
  }
  auto targets = StorageAuditor::PlanTargets(settings_.defaults, *boxes, *without_box, {});
  if (!targets) {
    spdlog::warn("audit: {}", targets.error().message);
    release(false);
    return;
  }
  // A paused box is under maintenance: its bucket waits for a later pass.
  if (auto paused = queue::BoxPauses(settings_.redis).List(); paused && !paused->empty()) {
    std::erase_if(*targets, [&](const AuditTarget& target) {
      for (const std::string& box : target.boxes.ids) {
        if (paused->count(box) > 0) {
          spdlog::info("audit: {} is not audited this pass: box {} is paused", target.name, box);
          return true;
        }
      }
      return target.boxes.without_box && paused->count("") > 0;
    });
  }
  std::vector<std::string> box_ids;
  for (const auto& [id, endpoint] : *boxes) box_ids.push_back(id);

  int logged = 0;
  StorageAuditor::Hooks hooks;
  hooks.on_problem = [&](const AuditProblem& problem) {
    metrics_.problems_found.With({ToString(problem.kind)}).Inc();
    if (logged++ < kProblemsLogged) {
      spdlog::warn("audit: {} box={} sha256={} key={}: {}", ToString(problem.kind),
                   problem.box.empty() ? "(default)" : problem.box, problem.sha256, problem.key,
                   problem.detail);
    }
  };
  hooks.checkpoint = [&](int64_t) { return Pace(stop); };
  StorageAuditor auditor(catalog_, settings_.redis, nullptr, hooks);
  AuditSettings audit;
  audit.deep = settings_.deep;
  audit.scope = "scrub";
  auto report = auditor.Run(*targets, box_ids, audit, stop);
  if (!report) {
    release(false);
    if (report.error().kind == ErrorKind::kCancelled && stop.stop_requested()) return;
    spdlog::warn("audit: pass interrupted (the next one continues it): {}", report.error().message);
    return;
  }

  queue::AuditRecord last;
  last.mode = StorageAuditor::Mode(audit);
  last.finished_at = UnixNow();
  int64_t checked = 0;
  for (const TargetSummary& target : report->targets) checked += target.objects;
  last.counts[std::string(kCheckedCount)] = checked;
  for (ProblemClass kind : kProblemClasses) {
    auto it = report->found.find(kind);
    last.counts[std::string(ToString(kind))] = it == report->found.end() ? 0 : it->second;
  }
  if (auto saved = progress_.Save(queue::kAuditLastPassKey, last, std::chrono::milliseconds(0));
      !saved) {
    spdlog::warn("audit: cannot record the pass: {}", saved.error().message);
  }
  release(true);
  if (report->Found() == 0) {
    spdlog::info("audit: pass done, {} objects and rows checked, nothing wrong", checked);
  } else {
    spdlog::warn(
        "audit: pass done, {} objects and rows checked, {} problems: run `media-sync "
        "audit` to list them, `media-sync audit --repair` to set right what can be",
        checked, report->Found());
  }
}

}  // namespace media_sync::audit
