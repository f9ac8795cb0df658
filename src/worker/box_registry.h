// BoxRegistry: the StoreRouter of a running worker. It maps a job's
// storage_box_id to an object store built for storage_boxes.minio_endpoint
// (host:port, or an http(s):// URL), caches one store per box, re-reads the
// endpoint every `refresh` and after a configuration error, and rebuilds the
// store when the endpoint changed. A job without a box uses MINIO_ENDPOINT.
//
// Health: a box whose store failed with an outage or configuration error is
// marked down for a backoff (1 s doubling to `max_backoff`). While it is down
// its jobs are deferred without touching it; when the backoff ends, exactly
// one job probes it (the others keep waiting) and its result marks the box
// up or down again.
//
// Jobs in flight per box (Admit): each box has a ConcurrencyLimit that
// adapts to what the box and the link to it sustain (concurrency_limit.h),
// between 1 and `max_in_flight` (BOX_MAX_IN_FLIGHT, by default
// SYNC_CONCURRENCY: a lone distant box may use every job thread). A job
// holds one of its box's slots while the box works for it (its upload);
// each slot given back after a success is a latency sample for the limit.
// A job beyond the limit:
//   - waits for a slot when the box is answering (a call ended, or a byte
//     moved, within the last second: busy, not hung) and fewer than the
//     process's spare jobs (see AwaitIntake) already wait for it;
//   - is deferred when those waiters are already there (the box has more
//     jobs than it can take: the others must not wait behind them), due
//     again a second later;
//   - is deferred after 100 ms when the box is silent (first contact still
//     pending, or nothing answered for a second while jobs are in flight:
//     it may hang). It is due again after as long as the box's oldest job
//     has been in flight (at least 1 s, at most `max_backoff`), so a hang
//     costs fewer and fewer turns the longer it lasts. A silent box also
//     takes no new slot beyond half the job threads: a box that hangs from
//     its first contact leaves the other half to the others.
// Either way no attempt is counted: the job is not at fault.
//
// Paused boxes (SetPaused, fed by the Monitor from `media-sync boxes pause`
// in Redis): their jobs are deferred at Admit, holding no slot and no
// thread, no attempt counted, each due again after a quarter of the pause so
// far (5 s to 30 s); the other boxes are untouched.
//
// How many jobs the process takes (AwaitIntake): job threads take a job
// only while the jobs held before their upload (taken, or waiting for a
// slot) and those uploading are fewer than the limits of the boxes in use
// (a box is in use while it has jobs, or had one in the last 5 s; at least
// one new box's first limit) plus a spare of a quarter of them (at least 2).
// So a lone box gets all it can use and a few jobs ready for each slot that
// frees, and no job is taken only to be deferred while its box keeps up;
// the rest of the threads wait without holding anything.
//
// Thread-safe. The catalog is asked outside the lock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "config/s3_options.h"
#include "core/catalog.h"
#include "core/store_router.h"
#include "util/mutex.h"
#include "worker/concurrency_limit.h"

namespace media_sync::worker {

class BoxRegistry final : public StoreRouter {
 public:
  using StoreFactory = std::function<Result<std::shared_ptr<ObjectStore>>(const s3::S3Options&)>;
  using Clock = std::function<TimePoint()>;

  struct Settings {
    std::chrono::seconds refresh{30};  // BOX_REFRESH_SECONDS
    std::chrono::milliseconds first_backoff{1000};
    std::chrono::seconds max_backoff{60};     // OUTAGE_BACKOFF_MAX_SECONDS
    std::chrono::seconds probe_timeout{120};  // a probe that never reports frees the box
    // BOX_MAX_IN_FLIGHT: the most jobs one box may hold, the ceiling of its
    // adaptive limit; 0: no limit at all (every job admitted, AwaitIntake
    // never blocks).
    int max_in_flight = 0;
    int threads = 0;                 // SYNC_CONCURRENCY: job threads (0: max_in_flight)
    int initial_limit = 4;           // a box's first limit, before it has answered
    double latency_tolerance = 2.0;  // ConcurrencyLimit::Settings::tolerance
  };

  // `defaults` holds MINIO_* (endpoint used for jobs without a box).
  BoxRegistry(s3::S3Options defaults, Catalog& catalog, StoreFactory factory, Settings settings,
              Clock clock = std::chrono::system_clock::now);

  std::optional<Ticket> AwaitIntake(const std::stop_token& stop,
                                    std::chrono::milliseconds max_wait) override;
  Admission Admit(const BoxId& box, const std::stop_token& stop, Ticket ticket) override;
  std::optional<TimePoint> DownUntil(const BoxId& box) override;
  Result<std::shared_ptr<ObjectStore>> ForBox(const BoxId& box) override;
  void ReportFailure(const BoxId& box, const Error& error) override;
  void ReportSuccess(const BoxId& box) override;
  void AbandonProbe(const BoxId& box) override;

  // The boxes an operator paused, by name ("" is MINIO_ENDPOINT), with the
  // reason; replaces the previous set (an absent box is resumed).
  void SetPaused(const std::map<std::string, std::string>& reasons);

  // Every box this process has used, with its state (for readiness, the
  // metrics and the reports `status` shows). name "" is MINIO_ENDPOINT.
  struct BoxState {
    std::string name;
    std::string endpoint;
    bool up = true;
    std::string error;  // the failure that marked it down
    int limit = 0;      // jobs it may have in flight now (0: no limit)
    int in_flight = 0;
    int waiting = 0;             // jobs waiting for one of its slots
    double latency_seconds = 0;  // recent uploads (moving average)
    double latency_ratio = 1;    // to the no-load latency (ConcurrencyLimit)
    TransportCounts transport;   // of every store this box had
  };
  std::vector<BoxState> States();

  // "host:port", "http://host:port/", "https://host" -> options for that box.
  static Result<s3::S3Options> OptionsForEndpoint(const s3::S3Options& defaults,
                                                  const std::string& endpoint);

 private:
  struct Box {
    std::string endpoint;
    std::shared_ptr<ObjectStore> store;
    TimePoint fetched_at{};
    bool reread = false;
    std::optional<TimePoint> down_until;
    std::optional<TimePoint> probing_since;
    std::chrono::milliseconds backoff{0};
    std::string last_error;
    TransportCounts retired;  // of the stores replaced since (endpoint changes)
  };
  // The jobs of one box in flight, and when it last answered (for Admit).
  struct Load {
    explicit Load(const ConcurrencyLimit::Settings& settings) : limit(settings) {}
    std::multiset<TimePoint> started;  // one entry per slot held
    std::optional<TimePoint> last_answer;
    ConcurrencyLimit limit;
    int waiting = 0;            // jobs in Admit waiting for a slot
    TimePoint last_admitted{};  // for "in use" (AwaitIntake)
    std::condition_variable_any slot_freed;
  };
  static std::string Name(const BoxId& box) { return box.value_or(""); }
  // A store about to be replaced: what it sent stays counted.
  static void Retire(Box& entry);
  // DownUntil() under mu_; `may_probe`: the caller can take the probe.
  std::optional<TimePoint> DownUntilLocked(const std::string& name, TimePoint now, bool may_probe)
      REQUIRES(mu_);
  ConcurrencyLimit::Settings LimitSettings() const;
  Load& LoadOf(const std::string& name) REQUIRES(mu_);
  Slot TakeSlot(const std::string& name, Load& load, TimePoint now) REQUIRES(mu_);
  // A slot given back: a latency sample when the box's part ended well,
  // less `setup`, the time its holder spent opening connections.
  void GiveBack(const std::string& name, std::multiset<TimePoint>::iterator held, int in_flight,
                std::chrono::nanoseconds setup, std::optional<uint64_t> bytes_if_ok) EXCLUDES(mu_);
  // The jobs the box may have in flight now; a silent box (may hang) no more
  // than half the job threads.
  size_t EffectiveLimit(const Load& load, bool answering) const REQUIRES(mu_);
  bool Answering(const std::string& name, const Load& load, TimePoint now) REQUIRES(mu_);
  // A box is in use while it has jobs, or had one in the last 5 s.
  static bool InUse(const Load& load, TimePoint now);
  // The box may hang: its oldest job has been in flight for a second, and
  // nothing came from it in that second.
  bool Suspected(const std::string& name, const Load& load, TimePoint now) REQUIRES(mu_);
  bool OthersInUse(const std::string& name, TimePoint now) REQUIRES(mu_);
  // Sums over the boxes in use, for AwaitIntake.
  int LimitsInUse(TimePoint now) REQUIRES(mu_);
  // The jobs the process may hold before their uploads: the limits in use,
  // their spare, and room to find other boxes' jobs while one may hang.
  int IntakeBudget(TimePoint now) REQUIRES(mu_);
  int Spare(int limits) const;
  int Held() REQUIRES(mu_);
  // Admit's decision, under the lock; the ticket is given back after it.
  Admission AdmitLocked(const std::string& name, const std::stop_token& stop) REQUIRES(mu_);

  const s3::S3Options defaults_;
  Catalog& catalog_;
  StoreFactory factory_;
  const Settings settings_;
  Clock clock_;

  Mutex mu_;
  std::map<std::string, Box> boxes_ GUARDED_BY(mu_);   // "" is the default endpoint
  std::map<std::string, Load> loads_ GUARDED_BY(mu_);  // nodes never move: Load holds a cv
  struct Paused {
    std::string reason;
    TimePoint since;  // when this process first saw the pause
  };
  std::map<std::string, Paused> paused_ GUARDED_BY(mu_);
  int intake_ GUARDED_BY(mu_) = 0;  // tickets out (AwaitIntake)
  std::condition_variable_any intake_room_;
};

}  // namespace media_sync::worker
