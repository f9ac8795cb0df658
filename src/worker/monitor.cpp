#include "worker/monitor.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/job.h"

namespace media_sync::worker {
namespace {

using Json = nlohmann::ordered_json;
using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kGaugeEvery = 500ms;  // also how often the thread beats
// The longest pause reason kept as a label value of media_sync_box_paused.
constexpr size_t kMaxReasonLabel = 120;

Json PartJson(bool up, const std::string& error) {
  return up ? Json("up") : Json("down: " + error);
}

// The buffer is usable when it is a directory we can list, read and write.
Status CheckBuffer(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Error::Outage(path + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return Error::Outage(path + ": not a directory");
  if (::access(path.c_str(), R_OK | W_OK | X_OK) != 0) {
    return Error::Outage(path + ": " + std::strerror(errno));
  }
  return Ok();
}

}  // namespace

Monitor::Monitor(MonitorSettings settings, MonitorSources sources, WorkerMetrics& metrics,
                 BoxRegistry& boxes, std::function<Status()> ping_database, Liveness& liveness,
                 Clock& clock)
    : settings_(std::move(settings)),
      sources_(std::move(sources)),
      metrics_(metrics),
      boxes_(boxes),
      ping_database_(std::move(ping_database)),
      liveness_(liveness),
      clock_(clock) {}

Monitor::~Monitor() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
}

void Monitor::Start() {
  ReadPauses();
  thread_ = std::jthread([this](const std::stop_token& stop) { Loop(stop); });
}

void Monitor::ReadPauses() {
  auto listed = sources_.pauses->List();
  if (!listed) return;  // a pause outlives an outage of Redis
  std::map<std::string, std::string> reasons;
  std::set<std::pair<std::string, std::string>> series;
  for (const auto& [box, pause] : *listed) {
    reasons[box] = pause.reason;
    const std::string label = box.empty() ? "default" : box;
    // Label values stay bounded: a reason is cut, and only operators write them.
    series.emplace(label, pause.reason.substr(0, kMaxReasonLabel));
    if (paused_.count(box) == 0 || paused_[box].reason != pause.reason) {
      spdlog::warn("storage box {} paused by {} at {}: {}; its jobs wait", label, pause.by,
                   pause.at, pause.reason);
    }
  }
  for (const auto& [box, pause] : paused_) {
    if (listed->count(box) == 0) {
      spdlog::info("storage box {} resumed", box.empty() ? "default" : box);
    }
  }
  boxes_.SetPaused(reasons);
  for (const auto& [box, reason] : paused_series_) {
    if (series.count({box, reason}) == 0) metrics_.box_paused.With({box, reason}).Set(0);
  }
  for (const auto& [box, reason] : series) metrics_.box_paused.With({box, reason}).Set(1);
  paused_series_.insert(series.begin(), series.end());
  paused_ = std::move(*listed);
}

void Monitor::Loop(const std::stop_token& stop) {
  auto registration = liveness_.Register("monitor");
  auto next_round = clock_.Now();
  while (!stop.stop_requested()) {
    // Beats every turn, not every round, so that a stall limit shorter
    // than the interval still sees this thread alive.
    Liveness::Beat();
    if (clock_.Now() >= next_round) {
      Round();
      ReadPauses();
      next_round = clock_.Now() + settings_.interval;
    }
    PublishBoxes();
    clock_.SleepFor(std::min<std::chrono::milliseconds>(settings_.interval, kGaugeEvery), stop);
  }
}

void Monitor::PublishBoxes() {
  for (const auto& box : boxes_.States()) {
    const std::string label = box.name.empty() ? "default" : box.name;
    metrics_.box_up.With({label}).Set(box.up ? 1 : 0);
    if (box.limit > 0) metrics_.box_limit.With({label}).Set(box.limit);
    metrics_.box_in_flight.With({label}).Set(box.in_flight);
    metrics_.box_latency.With({label}).Set(box.latency_seconds);
    metrics_.box_latency_ratio.With({label}).Set(box.latency_ratio);
    // Counters grow by what was sent since the last turn.
    TransportCounts& published = published_transport_[label];
    auto grow = [](metrics::Counter& counter, uint64_t now, uint64_t& before) {
      if (now > before) counter.Inc(static_cast<double>(now - before));
      before = std::max(before, now);
    };
    grow(metrics_.s3_requests.With({label}), box.transport.requests, published.requests);
    grow(metrics_.s3_connections.With({label}), box.transport.connections, published.connections);
    grow(metrics_.s3_tls_handshakes.With({label}), box.transport.tls_handshakes,
         published.tls_handshakes);
  }
}

void Monitor::Round() {
  auto now = clock_.WallNow();
  Status redis = Ok();
  if (auto counts = sources_.queue->Counts(); counts) {
    metrics_.queue_jobs.With({"pending"}).Set(static_cast<double>(counts->pending));
    metrics_.queue_jobs.With({"delayed"}).Set(static_cast<double>(counts->delayed));
    metrics_.queue_jobs.With({"failed"}).Set(static_cast<double>(counts->failed));
    metrics_.queue_jobs.With({"processing"}).Set(static_cast<double>(counts->processing));
    metrics_.live_workers.Set(static_cast<double>(counts->live_workers.size()));
  } else {
    redis = counts.error();
  }
  if (redis) {
    if (auto oldest = sources_.queue->OldestPending(); !oldest) {
      redis = oldest.error();
    } else {
      double age = 0;
      if (oldest->has_value()) {
        auto job = ParseJob(**oldest);
        if (job && job->queued_at && *job->queued_at < now) {
          age = std::chrono::duration<double>(now - *job->queued_at).count();
        }
      }
      metrics_.oldest_pending_age.Set(age);
    }
  }

  // This process's syncs since the last round, into the fleet's minute, and
  // the time it ran since then (what `status` divides them by).
  const WorkerMetrics::Totals totals = metrics_.ReadTotals();
  const uint64_t files = totals.synced;
  const uint64_t bytes = totals.bytes_uploaded;
  if (!running_since_) running_since_ = now;
  if (redis) {
    if (Status reported = sources_.reports->ReportRound(
            files - reported_files_, bytes - reported_bytes_, *running_since_, now);
        reported) {
      reported_files_ = files;
      reported_bytes_ = bytes;
      running_since_ = now;
    } else {
      redis = reported.error();
    }
  }

  // And its job faults by class (the console's failures by class).
  if (redis) {
    auto since = [](const std::map<std::string, uint64_t>& now_counts,
                    const std::map<std::string, uint64_t>& reported) {
      std::map<std::string, uint64_t> added;
      for (const auto& [label, count] : now_counts) {
        auto before = reported.find(label);
        uint64_t was = before == reported.end() ? 0 : before->second;
        if (count > was) added[label] = count - was;
      }
      return added;
    };
    if (Status added =
            sources_.reports->AddFaults(since(totals.failed_by_class, reported_failed_),
                                        since(totals.retried_by_class, reported_retried_), now);
        added) {
      reported_failed_ = totals.failed_by_class;
      reported_retried_ = totals.retried_by_class;
    } else {
      redis = added.error();
    }
  }

  auto boxes = boxes_.States();
  std::vector<BoxReport> reports;
  for (const auto& box : boxes) {
    BoxReport report{box.name,  box.endpoint,        box.up,
                     box.error, settings_.worker_id, IsoTimestamp(now)};
    report.limit = box.limit;
    report.in_flight = box.in_flight;
    report.latency_seconds = box.latency_seconds;
    reports.push_back(std::move(report));
  }
  if (redis) {
    if (Status reported = sources_.reports->ReportBoxes(reports); !reported) {
      redis = reported.error();
    }
  }

  Status postgres = ping_database_();
  Status buffer = CheckBuffer(settings_.buffer_path);
  std::optional<std::vector<std::string>> schema_advice;
  if (settings_.schema_advice && postgres && rounds_++ % std::max(1, settings_.schema_every) == 0) {
    schema_advice = settings_.schema_advice();
  }
  metrics_.redis_up.Set(redis ? 1 : 0);
  metrics_.postgres_up.Set(postgres ? 1 : 0);
  metrics_.buffer_up.Set(buffer ? 1 : 0);

  MutexLock lock(mu_);
  redis_ = Part{redis.ok(), redis ? std::string() : redis.error().message};
  postgres_ = Part{postgres.ok(), postgres ? std::string() : postgres.error().message};
  buffer_ = Part{buffer.ok(), buffer ? std::string() : buffer.error().message};
  box_states_ = std::move(boxes);
  if (schema_advice) schema_advice_ = std::move(*schema_advice);
}

metrics::Probe Monitor::Readiness() const {
  MutexLock lock(mu_);
  Json body;
  bool any_box_up = box_states_.empty();
  Json boxes = Json::object();
  for (const auto& box : box_states_) {
    any_box_up = any_box_up || box.up;
    boxes[box.name.empty() ? "default" : box.name] = PartJson(box.up, box.error);
  }
  bool ready = redis_.up && postgres_.up && buffer_.up && any_box_up;
  body["ready"] = ready;
  body["redis"] = PartJson(redis_.up, redis_.error);
  body["postgres"] = PartJson(postgres_.up, postgres_.error);
  body["buffer"] = PartJson(buffer_.up, buffer_.error);
  body["boxes"] = std::move(boxes);
  // Slow queries, not a reason to take the worker out of service.
  if (!schema_advice_.empty()) body["schema"] = schema_advice_;
  return {ready, body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"};
}

metrics::Probe Monitor::Health() const {
  auto stalled = liveness_.Stalled(settings_.stall_limit);
  Json body;
  body["healthy"] = stalled.empty();
  Json threads = Json::array();
  for (const auto& stall : stalled) {
    threads.push_back(
        Json{{"thread", stall.name}, {"seconds_without_progress", stall.since.count() / 1000}});
  }
  body["stalled"] = std::move(threads);
  return {stalled.empty(), body.dump() + "\n"};
}

}  // namespace media_sync::worker
