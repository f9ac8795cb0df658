// The bandwidth cap (SYNC_BANDWIDTH_LIMIT): one token bucket shared by every
// upload body of the process, whatever its box and its path (a small file's
// PutObject, a streamed PutObject, multipart parts).
//
// S3Client asks the limiter before it hands curl each piece of an upload
// body, from curl's read callback; the calling thread waits there until the
// cap lets bytes go. CURLOPT_MAX_SEND_SPEED_LARGE would not do: it paces one
// easy handle, not the sum over every transfer in flight. A paused transfer
// (CURL_READFUNC_PAUSE) would need a thread to resume it; a wait in the
// callback keeps the transfer on its own thread, where the stop token and
// the Liveness beats already are. Each wait is short (one grant's worth of
// time: a sixty-fourth of a second from 64 bytes/s up) and ends at once on a
// stop request, so a shutdown cancels a throttled upload as fast as any
// other.
//
// Accuracy: from any instant on, the bytes granted over the next T seconds
// are at most bytes_per_second x T + burst() + max_grant(), so a long
// transfer cannot run above the cap by more than that. Waiting transfers are
// served in no fixed order (there is no queue): the sum is capped, an even
// share per transfer is not promised.
//
// Thread-safety: TokenBucket is not thread-safe (BandwidthLimiter locks
// around it); BandwidthLimiter is.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <stop_token>

#include "util/mutex.h"

namespace media_sync::s3 {

// The arithmetic of the cap, on a clock the caller passes in (so it is
// tested without waiting). Tokens are bytes; they accrue at the rate up to
// burst(). A request is served while the bucket holds at least one token,
// with up to max_grant() bytes, which may leave the bucket in debt: the next
// request waits until the debt is paid.
class TokenBucket {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // bytes_per_second > 0. The bucket starts full.
  TokenBucket(uint64_t bytes_per_second, TimePoint now);

  // How many of `wanted` bytes may be sent at `now` (at most max_grant()),
  // taken from the bucket; 0 when the bucket is empty or in debt.
  uint64_t Take(uint64_t wanted, TimePoint now);
  // The earliest instant from which Take grants again (`now` when it would
  // grant at once).
  TimePoint ReadyAt(TimePoint now) const;

  uint64_t bytes_per_second() const { return rate_; }
  // The most tokens the bucket keeps: a twentieth of a second's worth, at
  // least one grant.
  uint64_t burst() const { return burst_; }
  // The most one Take hands out: a sixty-fourth of a second's worth, between
  // 1 byte and 64 KiB (curl's upload buffer), so a transfer waits briefly and
  // often rather than long and rarely.
  uint64_t max_grant() const { return max_grant_; }

 private:
  double TokensAt(TimePoint now) const;

  const uint64_t rate_;
  const uint64_t max_grant_;
  const uint64_t burst_;
  double tokens_;  // at last_; below 0 while in debt
  TimePoint last_;
};

class BandwidthLimiter {
 public:
  explicit BandwidthLimiter(uint64_t bytes_per_second);
  BandwidthLimiter(const BandwidthLimiter&) = delete;
  BandwidthLimiter& operator=(const BandwidthLimiter&) = delete;

  // Waits until the cap lets bytes go and returns how many of `wanted` may
  // be sent now (1..wanted, at most max_grant()). Returns 0 for wanted == 0,
  // or when stop is requested before bytes were granted (at once, also while
  // waiting).
  size_t Acquire(size_t wanted, const std::stop_token& stop) EXCLUDES(mutex_);

  uint64_t bytes_per_second() const { return rate_; }

  // The process-wide limiter, created on first use with bytes_per_second;
  // later calls return the same limiter whatever they pass. nullptr when
  // bytes_per_second is 0 (no cap).
  static BandwidthLimiter* ForProcess(uint64_t bytes_per_second);

 private:
  const uint64_t rate_;
  Mutex mutex_;
  // Never notified: a wait ends at the bucket's ReadyAt or on a stop request.
  std::condition_variable_any stop_or_ready_;
  TokenBucket bucket_ GUARDED_BY(mutex_);
};

}  // namespace media_sync::s3
