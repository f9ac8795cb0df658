// ConcurrencyLimit: how many uploads one storage box may have in flight,
// found from what the box and the link to it sustain (pure logic, one per
// box in BoxRegistry; not thread-safe: the registry calls it under its lock).
//
// The signal is latency. Every upload that ends well is a sample: its size
// and how long it held its slot. A sample is compared with the no-load
// latency of uploads of its size (its class: sizes within a factor of four;
// its floor, below), giving a ratio.
// While the link and the box keep up, more uploads in flight leave each one
// as fast as before (the ratio stays near 1: a distant box's round trip, not
// its load, sets the latency) and the limit grows; once they queue (a
// saturated uplink, a busy server, a bandwidth cap shared by more uploads)
// every added upload only makes the others slower, the ratio climbs, and the
// limit shrinks in proportion. This is the idea of TCP Vegas and of the
// gradient limiters of Netflix's concurrency-limits, applied per size class
// so that a mix of small and large files reads as one signal.
//
// Rounds: the limit changes once per round of `limit` samples (one window's
// worth of uploads, so about one latency on a busy box), counting only
// uploads that started after the last change (the others saw the old limit):
//   - slow start (from `initial`): the limit doubles each round until the
//     first round whose median ratio exceeds `tolerance` (but the box's very
//     first round over it only teaches floors: it paid for first contact,
//     the bucket check and set-ups, not for a queue);
//   - then, each round: median ratio above `tolerance` -> limit × max(1/2,
//     tolerance / ratio); else, when the round used the limit (some upload
//     started with at least 3/4 of the limit in flight), limit + max(1,
//     sqrt(limit) / 2). A box that does not use its limit keeps it.
//   - an outage (OnFailure) halves it and ends slow start.
// The limit stays within [1, ceiling].
//
// Floors: the no-load latency of a class is a low percentile (the 20th)
// of its last 32 samples taken with at most 4 uploads in flight (no queue
// of our own to speak of), or, before there are 5 of those, the least
// latency seen. So a box's own queueing never inflates the floor it is
// judged against, a lucky sample on a noisy host does not make every later
// one look queued, and a path that really got slower is learned once the
// limit has come down. The round's verdict is its median ratio, for the
// same reason.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace media_sync::worker {

class ConcurrencyLimit {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::system_clock::time_point;

  struct Settings {
    int initial = 4;         // where a new box starts its slow start
    int ceiling = 128;       // BOX_MAX_IN_FLIGHT
    double tolerance = 2.0;  // latency may reach this multiple of the no-load latency
  };

  explicit ConcurrencyLimit(Settings settings);

  int limit() const;

  // An upload of `bytes` ended well after `took`; `in_flight` of the box's
  // uploads were in flight when it started (itself included).
  void OnSuccess(uint64_t bytes, Duration took, int in_flight, TimePoint now);
  // The box failed (an outage: refused, reset, timed out, 5xx).
  void OnFailure(TimePoint now);

  // What status and /metrics show.
  struct Snapshot {
    int limit = 0;
    bool slow_start = true;
    double latency_seconds = 0;  // recent uploads, all sizes (moving average)
    double latency_ratio = 1;    // the last round's median ratio to the floors
  };
  Snapshot snapshot() const;

  // The size class of an upload: 0 up to 64 KiB, then one per factor of 4.
  static int SizeClass(uint64_t bytes);

 private:
  static constexpr int kClasses = 16;
  static constexpr size_t kKeptUnloaded = 32;
  static constexpr size_t kEnoughUnloaded = 5;
  struct Floor {
    std::optional<Duration> least;                   // the least latency seen
    std::array<Duration, kKeptUnloaded> unloaded{};  // the last no-load samples, a ring
    size_t count = 0;
    size_t next = 0;
  };
  double FloorRatio(Floor& floor, Duration took, int in_flight) const;
  void EndRound(TimePoint now);

  Settings settings_;
  double limit_;
  bool slow_start_ = true;
  bool judged_ = false;  // a round was judged (the first one may only teach floors)
  std::array<Floor, kClasses> floors_{};
  // The round under way: the ratio of each sample to its floor.
  std::vector<double> ratios_;
  int busiest_ = 0;  // most uploads in flight at the start of one of its samples
  double last_ratio_ = 1;
  TimePoint changed_at_{};  // when the limit last changed
  double latency_seconds_ = 0;
};

}  // namespace media_sync::worker
