// Clock: the time and the waiting of the threads that run on a schedule
// (the worker's maintenance and backoffs, the monitor, the periodic
// reconcile), as leveldb's Env carries NowMicros and SleepForMicroseconds: the
// process runs on Clock::Real(), unit tests on a SimulatedClock
// (core/test_doubles.h) whose time moves only when the test says, so a lease
// or an interval is crossed exactly and no test waits it out.
//
// Two times: Now() is monotonic, for intervals, leases and deadlines;
// WallNow() is the calendar, for what is written down or shown (due times,
// reports, job timestamps).
//
// Thread-safety: every call is safe from any thread.
#pragma once

#include <chrono>
#include <stop_token>

namespace media_sync {

class Clock {
 public:
  virtual ~Clock() = default;

  virtual std::chrono::steady_clock::time_point Now() const = 0;
  virtual std::chrono::system_clock::time_point WallNow() const = 0;

  // Waits `duration` (none when it is zero or negative). Returns early, and
  // true, once `stop` is requested (at once if it already was); false when
  // the time is up.
  virtual bool SleepFor(std::chrono::milliseconds duration, const std::stop_token& stop) = 0;

  // steady_clock, system_clock, and a wait that a stop request ends at once.
  // Lives as long as the process.
  static Clock& Real();
};

}  // namespace media_sync
