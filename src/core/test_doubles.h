// In-memory doubles of the core seams, for unit tests of pure logic only
// (the pipeline's and the worker's decisions); everything that talks to
// Redis, PostgreSQL or S3 is tested against the real servers. Each double
// is safe to share between threads (one mutex each) and exposes its state as
// public fields for the test to arrange and inspect.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <stop_token>
#include <string>
#include <tuple>
#include <vector>

#include "core/catalog.h"
#include "core/fleet_lock.h"
#include "core/fleet_reports.h"
#include "core/hash.h"
#include "core/job_queue.h"
#include "core/object_store.h"
#include "core/queue_census.h"
#include "core/store_router.h"
#include "util/clock.h"
#include "util/mutex.h"

namespace media_sync::doubles {

// Time that moves only when the test advances it. A thread in SleepFor
// wakes once Advance() has carried the time to its wake-up (or on a stop
// request), so a test crosses a lease or an interval exactly: to the
// millisecond, and without waiting it out. AwaitSleepers() tells the test
// that the threads it drives have done their turn and wait again.
class SimulatedClock final : public Clock {
 public:
  // Far from the steady clock's epoch, so that a time_point{} a class keeps
  // for "never" is long ago, as it is on the real clock.
  static constexpr std::chrono::steady_clock::time_point kStart{std::chrono::hours(24 * 365)};
  // 2026-01-01T00:00:00Z.
  static constexpr std::chrono::system_clock::time_point kWallStart{
      std::chrono::seconds(1767225600)};

  std::chrono::steady_clock::time_point Now() const override {
    MutexLock lock(mu_);
    return kStart + elapsed_;
  }
  std::chrono::system_clock::time_point WallNow() const override {
    MutexLock lock(mu_);
    return kWallStart + elapsed_;
  }
  bool SleepFor(std::chrono::milliseconds duration, const std::stop_token& stop) override {
    MutexLock lock(mu_);
    const std::chrono::milliseconds wake_at = elapsed_ + std::max(duration, kNone);
    auto sleeper = wake_ups_.insert(wake_at);
    ++sleeps_;
    changed_.notify_all();
    changed_.wait(lock, stop, [&] {
      mu_.AssertHeld();
      return elapsed_ >= wake_at;
    });
    wake_ups_.erase(sleeper);
    changed_.notify_all();
    return stop.stop_requested();
  }

  // Moves the time on, waking every sleeper whose time has come.
  void Advance(std::chrono::milliseconds by) {
    MutexLock lock(mu_);
    elapsed_ += by;
    changed_.notify_all();
  }
  std::chrono::milliseconds Elapsed() const {
    MutexLock lock(mu_);
    return elapsed_;
  }
  // Waits (at most `timeout` of real time) until at least `count` threads
  // sleep with their wake-up still ahead: those woken by the last Advance()
  // have done their turn. False on timeout.
  bool AwaitSleepers(size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    MutexLock lock(mu_);
    return changed_.wait_for(lock, timeout, [&] {
      mu_.AssertHeld();
      return static_cast<size_t>(std::distance(wake_ups_.upper_bound(elapsed_), wake_ups_.end())) >=
             count;
    });
  }
  // SleepFor calls so far.
  int Sleeps() const {
    MutexLock lock(mu_);
    return sleeps_;
  }

 private:
  static constexpr std::chrono::milliseconds kNone{0};
  mutable Mutex mu_;
  std::condition_variable_any changed_;
  std::chrono::milliseconds elapsed_ GUARDED_BY(mu_){0};
  std::multiset<std::chrono::milliseconds> wake_ups_ GUARDED_BY(mu_);  // one per sleeper
  int sleeps_ GUARDED_BY(mu_) = 0;
};

// Keeps whatever Upload accepts, verifying the bytes like the real store.
class FakeStore : public ObjectStore {
 public:
  Result<std::optional<ObjectInfo>> Stat(const std::string& key, std::stop_token stop) override {
    std::lock_guard lock(mu);
    ++stats;
    if (stop.stop_requested()) return Error::Cancelled("shutting down");
    if (outage) return Error::Outage("connection refused");
    auto it = objects.find(key);
    if (it == objects.end()) return std::optional<ObjectInfo>();
    return std::optional<ObjectInfo>(it->second.info);
  }
  Result<ObjectInfo> Upload(const std::string& key, int fd, uint64_t size,
                            const std::string& sha256_hex, std::stop_token stop) override {
    std::function<void()> hook;
    ObjectInfo info{size, sha256_hex, "etag"};
    {
      std::lock_guard lock(mu);
      ++upload_calls;
      if (stop.stop_requested()) return Error::Cancelled("shutting down");
      if (outage) return Error::Outage("connection reset");
      if (upload_error) return *upload_error;
      std::string bytes(size, '\0');
      if (pread(fd, bytes.data(), size, 0) != static_cast<ssize_t>(size)) {
        return Error::JobRetryable("short read");
      }
      std::string actual = Sha256Hex(bytes);
      auto existing = objects.find(key);
      if (existing != objects.end() && existing->second.info.size == size &&
          existing->second.info.sha256 == sha256_hex) {
        // As the real store: an identical object is kept, the local bytes hashed all the same.
        if (actual != sha256_hex) {
          return Error::JobRetryable("Local file does not match sha256: expected " + sha256_hex +
                                     ", got " + actual);
        }
        ObjectInfo kept = existing->second.info;
        kept.already_stored = true;
        return kept;
      }
      if (actual != sha256_hex) {
        return Error::JobRetryable("SHA-256 mismatch: expected " + sha256_hex + ", got " + actual);
      }
      ++uploads;
      objects[key] = {info, bytes};
      hook = after_upload;
    }
    if (hook) hook();
    return info;
  }

  struct Object {
    ObjectInfo info;
    std::string bytes;
  };
  std::mutex mu;
  std::map<std::string, Object> objects;
  bool outage = false;
  std::optional<Error> upload_error;  // what Upload answers instead of storing
  std::function<void()> after_upload;
  int uploads = 0;       // objects written
  int upload_calls = 0;  // calls to Upload, written or not
  int stats = 0;
};

// Every box is served by one FakeStore; boxes can be marked down.
class FakeRouter : public StoreRouter {
 public:
  explicit FakeRouter(std::shared_ptr<FakeStore> store) : store_(std::move(store)) {}
  std::optional<TimePoint> DownUntil(const BoxId& box) override {
    std::lock_guard lock(mu);
    auto it = down_until.find(box.value_or(""));
    if (it == down_until.end()) return std::nullopt;
    return it->second;
  }
  Result<std::shared_ptr<ObjectStore>> ForBox(const BoxId& box) override {
    std::lock_guard lock(mu);
    if (catalog_outage) return Error::Outage("PostgreSQL unavailable");
    if (box && *box == "nowhere") return Error::JobRetryable("Unknown storage box nowhere");
    return std::shared_ptr<ObjectStore>(store_);
  }
  void ReportFailure(const BoxId& box, const Error&) override {
    std::lock_guard lock(mu);
    ++failures_reported;
    down_until[box.value_or("")] =
        std::chrono::system_clock::time_point(std::chrono::seconds(1000));
  }
  void ReportSuccess(const BoxId& box) override {
    std::lock_guard lock(mu);
    down_until.erase(box.value_or(""));
  }
  void AbandonProbe(const BoxId& box) override {
    std::lock_guard lock(mu);
    abandoned.push_back(box.value_or(""));
  }

  std::mutex mu;
  std::vector<std::string> abandoned;
  int failures_reported = 0;
  std::map<std::string, TimePoint> down_until;
  bool catalog_outage = false;

 private:
  std::shared_ptr<FakeStore> store_;
};

// media_files rows as sha256 -> synced, with exact box counters.
class FakeCatalog : public Catalog {
 public:
  Result<RecordOutcome> RecordSync(const std::string& sha256, uint64_t file_size,
                                   const std::optional<std::string>& box) override {
    std::lock_guard lock(mu);
    if (outage) return Error::Outage("PostgreSQL unavailable: connection refused");
    auto row = synced.find(sha256);
    if (row == synced.end()) return Error::JobRetryable("No media_files row for sha256 " + sha256);
    if (row->second) return RecordOutcome::kAlreadySynced;
    row->second = true;
    if (box) used_bytes[*box] += file_size;
    return RecordOutcome::kSynced;
  }
  Result<std::optional<std::string>> BoxEndpoint(const std::string& box) override {
    std::lock_guard lock(mu);
    auto it = endpoints.find(box);
    if (it == endpoints.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }

  void SetOutage(bool down) {
    std::lock_guard lock(mu);
    outage = down;
  }

  std::mutex mu;
  std::map<std::string, bool> synced;  // sha256 -> synced_at set
  std::map<std::string, uint64_t> used_bytes;
  std::map<std::string, std::string> endpoints;  // storage_boxes.minio_endpoint by id
  bool outage = false;
};

// media_files rows never synced, with the time each was created, paged as
// PgCatalog pages them: (created_at, sha256) order, rows created before
// `older_than_seconds` ago on the clock's wall time. The cursor's created_at
// is the row's creation in milliseconds since the epoch.
class FakeUnsyncedRows : public UnsyncedRows {
 public:
  explicit FakeUnsyncedRows(const Clock& clock) : clock_(clock) {}

  Result<std::vector<UnsyncedFile>> UnsyncedAfter(UnsyncedCursor& cursor, int limit,
                                                  int older_than_seconds) override {
    std::lock_guard lock(mu);
    ++pages;
    asked_older_than.push_back(older_than_seconds);
    if (outage) return Error::Outage("PostgreSQL unavailable: connection refused");
    std::vector<UnsyncedFile> page;
    if (limit <= 0) return page;
    const auto cutoff = clock_.WallNow() - std::chrono::seconds(older_than_seconds);
    auto key = [](const Row& row) {
      return std::make_tuple(Millis(row.created_at), row.file.sha256);
    };
    std::vector<const Row*> order;
    for (const Row& row : rows) order.push_back(&row);
    std::sort(order.begin(), order.end(),
              [&](const Row* a, const Row* b) { return key(*a) < key(*b); });
    const auto after =
        std::make_tuple(cursor.created_at.empty() ? std::numeric_limits<int64_t>::min()
                                                  : std::stoll(cursor.created_at),
                        cursor.sha256);
    for (const Row* row : order) {
      if (static_cast<int>(page.size()) >= limit) break;
      if (row->synced || row->created_at >= cutoff || key(*row) <= after) continue;
      page.push_back(row->file);
      cursor = {std::to_string(Millis(row->created_at)), row->file.sha256};
    }
    return page;
  }

  // A row for `content` stored under its content key, created `age` before
  // now on the clock.
  UnsyncedFile Add(const std::string& content, std::chrono::seconds age,
                   std::optional<std::string> box = "box-a") {
    std::string sha = Sha256Hex(content);
    UnsyncedFile file{sha,
                      "media/" + sha.substr(0, 2) + "/" + sha.substr(2, 2) + "/" + sha + ".jpg",
                      content.size(), std::move(box)};
    std::lock_guard lock(mu);
    rows.push_back({file, clock_.WallNow() - age});
    return file;
  }

  struct Row {
    UnsyncedFile file;
    std::chrono::system_clock::time_point created_at;
    bool synced = false;
  };
  std::mutex mu;
  std::vector<Row> rows;
  bool outage = false;
  int pages = 0;                      // calls
  std::vector<int> asked_older_than;  // per call

 private:
  static int64_t Millis(std::chrono::system_clock::time_point at) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  }
  const Clock& clock_;
};

// The whole queue in memory, as QueueAdmin reads and pushes it: pending's
// head (served next) is its back, and Enqueue pushes at its front (LPUSH).
// The sha256 walk goes in chunks of `chunk` entries, calling `before_walk`
// at the start of each walk (a test's way to move jobs meanwhile).
class InMemoryQueueCensus : public QueueCensus, public JobProducer {
 public:
  Result<QueueCounts> Counts() override {
    std::lock_guard lock(mu);
    ++counts_read;
    if (outage) return Down();
    QueueCounts counts;
    counts.pending = static_cast<int64_t>(pending.size());
    counts.delayed = static_cast<int64_t>(delayed.size());
    counts.failed = static_cast<int64_t>(failed.size());
    for (const auto& [worker, held] : processing) {
      counts.processing += static_cast<int64_t>(held.size());
      counts.processing_by_worker[worker] = static_cast<int64_t>(held.size());
    }
    counts.live_workers = live_workers;
    return counts;
  }
  Result<std::optional<std::string>> OldestPending() override {
    std::lock_guard lock(mu);
    if (outage) return Down();
    if (pending.empty()) return std::optional<std::string>();
    return std::optional<std::string>(pending.back());
  }
  Result<int64_t> QueuedEntries() override {
    auto counts = Counts();
    if (!counts) return counts.error();
    return counts->pending + counts->delayed + counts->failed + counts->processing;
  }
  Status ForEachQueuedSha256(const std::function<void(std::string_view)>& visit,
                             const std::function<Status()>& between_chunks) override {
    std::function<void()> hook;
    {
      std::lock_guard lock(mu);
      ++walks;
      hook = before_walk;
    }
    if (hook) hook();
    std::vector<std::string> all;
    {
      std::lock_guard lock(mu);
      if (outage) return Down();
      all.insert(all.end(), pending.begin(), pending.end());
      all.insert(all.end(), delayed.begin(), delayed.end());
      for (const auto& [worker, held] : processing) all.insert(all.end(), held.begin(), held.end());
      all.insert(all.end(), failed.begin(), failed.end());
    }
    for (size_t i = 0; i < all.size(); ++i) {
      auto document = nlohmann::json::parse(all[i], nullptr, /*allow_exceptions=*/false);
      if (document.is_object() && document.contains("sha256") && document["sha256"].is_string()) {
        std::string sha = document["sha256"].get<std::string>();
        std::transform(sha.begin(), sha.end(), sha.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        visit(sha);
      }
      if ((i + 1) % chunk == 0 || i + 1 == all.size()) {
        if (between_chunks) {
          if (Status status = between_chunks(); !status) return status;
        }
      }
    }
    return Ok();
  }
  Status Enqueue(std::span<const std::string> payloads) override {
    std::lock_guard lock(mu);
    if (outage) return Down();
    for (const std::string& payload : payloads) pending.push_front(payload);
    enqueued.insert(enqueued.end(), payloads.begin(), payloads.end());
    return Ok();
  }

  std::mutex mu;
  std::deque<std::string> pending;
  std::vector<std::string> delayed;
  std::map<std::string, std::deque<std::string>> processing;  // worker id -> its list
  std::vector<std::string> failed;
  std::vector<std::string> live_workers;
  std::vector<std::string> enqueued;  // every payload Enqueue pushed, in order
  std::function<void()> before_walk;
  size_t chunk = 2;
  int walks = 0;
  int counts_read = 0;  // Counts() calls
  bool outage = false;

 private:
  static Error Down() { return Error::Outage("Redis unavailable: connection refused"); }
};

// What a worker reported to the fleet, kept as it came.
class InMemoryFleetReports : public FleetReports {
 public:
  struct Round {
    uint64_t files = 0;
    uint64_t bytes = 0;
    std::chrono::system_clock::time_point ran_from;
    std::chrono::system_clock::time_point now;
  };
  Status ReportRound(uint64_t files, uint64_t bytes, std::chrono::system_clock::time_point ran_from,
                     std::chrono::system_clock::time_point now) override {
    std::lock_guard lock(mu);
    if (outage) return Down();
    rounds.push_back({files, bytes, ran_from, now});
    return Ok();
  }
  Status AddFaults(const std::map<std::string, uint64_t>& failed,
                   const std::map<std::string, uint64_t>& retried,
                   std::chrono::system_clock::time_point /*now*/) override {
    std::lock_guard lock(mu);
    if (outage) return Down();
    for (const auto& [label, count] : failed) failed_by_class[label] += count;
    for (const auto& [label, count] : retried) retried_by_class[label] += count;
    return Ok();
  }
  Status ReportBoxes(const std::vector<BoxReport>& reports) override {
    std::lock_guard lock(mu);
    if (outage) return Down();
    box_reports.push_back(reports);
    return Ok();
  }

  std::mutex mu;
  std::vector<Round> rounds;
  std::vector<std::vector<BoxReport>> box_reports;  // one list per report
  std::map<std::string, uint64_t> failed_by_class;  // AddFaults summed
  std::map<std::string, uint64_t> retried_by_class;
  bool outage = false;

 private:
  static Error Down() { return Error::Outage("Redis unavailable: connection refused"); }
};

// The boxes an operator paused.
class InMemoryPausedBoxes : public PausedBoxes {
 public:
  Result<std::map<std::string, BoxPause>> List() override {
    std::lock_guard lock(mu);
    ++lists;
    if (outage) return Error::Outage("Redis unavailable: connection refused");
    return paused;
  }

  std::mutex mu;
  std::map<std::string, BoxPause> paused;
  bool outage = false;
  int lists = 0;
};

// A FleetLock in memory on a clock: `owner`'s lock, which a test can hand
// to another owner (`holder`) or take away mid-pass (`lose_on_extend`).
class InMemoryFleetLock : public FleetLock {
 public:
  InMemoryFleetLock(const Clock& clock, std::string owner)
      : clock_(clock), owner_(std::move(owner)) {}

  Result<Acquired> TryAcquire(std::chrono::milliseconds ttl) override {
    std::lock_guard lock(mu);
    ++acquires;
    if (outage) return Down();
    const auto now = clock_.Now();
    if (quiet_until > now) return Acquired::kRecentlyRun;
    if (holder && expires_at > now) return Acquired::kHeld;
    holder = owner_;
    expires_at = now + ttl;
    return Acquired::kYes;
  }
  Result<bool> Extend(std::chrono::milliseconds ttl) override {
    std::lock_guard lock(mu);
    ++extends;
    if (outage) return Down();
    if (lose_on_extend) {
      holder = "another worker";  // the TTL ran out and another took the lock
      return false;
    }
    if (!Holds()) return false;
    expires_at = clock_.Now() + ttl;
    return true;
  }
  Result<bool> Release(std::chrono::milliseconds quiet) override {
    std::lock_guard lock(mu);
    releases.push_back(quiet);
    if (outage) return Down();
    if (!Holds()) return false;
    holder.reset();
    if (quiet.count() > 0) quiet_until = clock_.Now() + quiet;
    return true;
  }
  Result<std::optional<std::string>> Holder() override {
    std::lock_guard lock(mu);
    if (outage) return Down();
    if (holder && expires_at <= clock_.Now()) holder.reset();
    return holder;
  }

  std::mutex mu;
  std::optional<std::string> holder;
  std::chrono::steady_clock::time_point expires_at{};
  std::chrono::steady_clock::time_point quiet_until{};
  bool lose_on_extend = false;
  bool outage = false;
  int acquires = 0;
  int extends = 0;
  std::vector<std::chrono::milliseconds> releases;  // the quiet period of each

 private:
  bool Holds() const { return holder == owner_ && expires_at > clock_.Now(); }
  static Error Down() { return Error::Outage("Redis unavailable: connection refused"); }
  const Clock& clock_;
  const std::string owner_;
};

// Writes `content` into the buffer at `buffer_dir` under its content path and
// adds its unsynced row to `catalog`; returns the job.
inline nlohmann::ordered_json MakeBufferedJob(const std::string& buffer_dir,
                                              const std::string& content, FakeCatalog& catalog,
                                              const std::string& box = "russia-1") {
  std::string sha = Sha256Hex(content);
  std::string relative = "media/" + sha.substr(0, 2) + "/" + sha.substr(2, 2) + "/" + sha + ".jpg";
  std::filesystem::create_directories(
      std::filesystem::path(buffer_dir + "/" + relative).parent_path());
  std::ofstream(buffer_dir + "/" + relative, std::ios::binary) << content;
  {
    std::lock_guard lock(catalog.mu);
    catalog.synced[sha] = false;
  }
  return nlohmann::ordered_json{{"sha256", sha},
                                {"s3_key", relative},
                                {"local_path", buffer_dir + "/" + relative},
                                {"storage_box_id", box},
                                {"file_size", content.size()},
                                {"queued_at", "2024-01-15T12:00:00"}};
}

// The reliable queue of one worker id, in memory: what InMemoryJobQueue and
// InMemoryUpkeep share. Lists keep Redis's order (pending's head is its
// back; processing's newest entry is its front).
struct InMemoryQueueState {
  // Waits until `condition` (called under the lock) holds or `timeout`
  // passes; every change to the state wakes the waiters.
  bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu);
    return changed.wait_for(lock, timeout, condition);
  }
  void Push(const std::string& payload) {
    std::lock_guard lock(mu);
    pending.push_front(payload);
    changed.notify_all();
  }
  void SetUp(bool up) {
    std::lock_guard lock(mu);
    redis_up = up;
    changed.notify_all();
  }
  // Removes one copy of `payload` from `list`; true when there was one.
  static bool RemoveOne(std::deque<std::string>& list, const std::string& payload) {
    auto it = std::find(list.begin(), list.end(), payload);
    if (it == list.end()) return false;
    list.erase(it);
    return true;
  }

  std::mutex mu;
  std::condition_variable changed;
  bool redis_up = true;
  bool lease = false;  // the heartbeat key exists
  // The next take moves a job but its reply is lost (the caller sees an outage).
  bool lose_next_take_reply = false;
  std::deque<std::string> pending;
  std::deque<std::string> processing;
  std::vector<std::pair<std::string, std::chrono::system_clock::time_point>> delayed;
  std::vector<std::string> failed;
  std::vector<std::string> acked;
  std::vector<std::string> released;
  int heartbeats = 0;
  // On `clock` (the worker's, in a test on simulated time).
  const Clock* clock = &Clock::Real();
  std::vector<std::chrono::steady_clock::time_point> heartbeat_times;  // successful ones
  std::vector<std::chrono::steady_clock::time_point> reap_times;
  int takes = 0;
  int take_calls_without_lease = 0;  // Take called before a heartbeat made the lease
};

class InMemoryJobQueue : public JobQueue {
 public:
  explicit InMemoryJobQueue(std::shared_ptr<InMemoryQueueState> state) : state_(std::move(state)) {}

  Result<std::optional<Delivery>> Take(std::chrono::milliseconds wait) override {
    std::unique_lock lock(state_->mu);
    if (!state_->lease) ++state_->take_calls_without_lease;
    state_->changed.wait_for(lock, wait,
                             [&] { return !state_->redis_up || !state_->pending.empty(); });
    if (!state_->redis_up) return Down();
    if (!state_->lease) return Error::Outage("worker holds no lease");
    if (state_->pending.empty()) return std::optional<Delivery>();
    std::string payload = state_->pending.back();
    state_->pending.pop_back();
    state_->processing.push_front(payload);
    ++state_->takes;
    state_->changed.notify_all();
    if (state_->lose_next_take_reply) {
      state_->lose_next_take_reply = false;
      return Error::Outage("connection reset by peer");
    }
    return std::optional<Delivery>(Delivery{payload, 0});
  }
  Status Ack(const Delivery& delivery) override {
    return Move(
        delivery, [&] { state_->acked.push_back(delivery.payload); }, true);
  }
  Status Delay(const Delivery& delivery, const std::string& payload,
               std::chrono::system_clock::time_point due) override {
    return Move(delivery, [&] { state_->delayed.emplace_back(payload, due); });
  }
  Status Fail(const Delivery& delivery, const std::string& entry) override {
    return Move(delivery, [&] { state_->failed.push_back(entry); });
  }
  Status Release(const Delivery& delivery) override {
    return Move(delivery, [&] {
      state_->pending.push_back(delivery.payload);
      state_->released.push_back(delivery.payload);
    });
  }
  Result<bool> Holds(const Delivery& delivery) override {
    std::lock_guard lock(state_->mu);
    if (!state_->redis_up) return Down();
    return std::find(state_->processing.begin(), state_->processing.end(), delivery.payload) !=
           state_->processing.end();
  }

 private:
  static Error Down() { return Error::Outage("Redis unavailable: connection refused"); }
  // Like the Lua scripts: nothing happens to a job no longer in processing,
  // except an Ack (`always`), which records the outcome either way.
  Status Move(const Delivery& delivery, const std::function<void()>& then, bool always = false) {
    std::lock_guard lock(state_->mu);
    if (!state_->redis_up) return Down();
    bool removed = InMemoryQueueState::RemoveOne(state_->processing, delivery.payload);
    if (removed || always) then();
    state_->changed.notify_all();
    return Ok();
  }

  std::shared_ptr<InMemoryQueueState> state_;
};

class InMemoryUpkeep : public QueueUpkeep {
 public:
  explicit InMemoryUpkeep(std::shared_ptr<InMemoryQueueState> state) : state_(std::move(state)) {}

  Status Heartbeat() override {
    std::lock_guard lock(state_->mu);
    ++state_->heartbeats;
    state_->changed.notify_all();
    if (!state_->redis_up) return Down();
    state_->lease = true;
    state_->heartbeat_times.push_back(state_->clock->Now());
    state_->changed.notify_all();
    return Ok();
  }
  Result<int64_t> ReapDeadWorkers() override {
    std::lock_guard lock(state_->mu);
    if (!state_->redis_up) return Down();
    state_->reap_times.push_back(state_->clock->Now());
    state_->changed.notify_all();
    return int64_t{0};
  }
  Result<int64_t> PromoteDueRetries() override {
    std::lock_guard lock(state_->mu);
    if (!state_->redis_up) return Down();
    return int64_t{0};
  }
  Result<std::vector<std::string>> OwnEntries() override {
    std::lock_guard lock(state_->mu);
    if (!state_->redis_up) return Down();
    return std::vector<std::string>(state_->processing.begin(), state_->processing.end());
  }
  Result<bool> Idle() override {
    std::lock_guard lock(state_->mu);
    if (!state_->redis_up) return Down();
    return state_->pending.empty() && state_->delayed.empty() && state_->processing.empty();
  }
  Result<bool> Deregister() override {
    std::lock_guard lock(state_->mu);
    if (!state_->redis_up) return Down();
    if (!state_->processing.empty()) return false;
    state_->lease = false;
    state_->changed.notify_all();
    return true;
  }

 private:
  static Error Down() { return Error::Outage("Redis unavailable: connection refused"); }
  std::shared_ptr<InMemoryQueueState> state_;
};

}  // namespace media_sync::doubles
