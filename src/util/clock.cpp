#include "util/clock.h"

#include <condition_variable>
#include <mutex>

namespace media_sync {
namespace {

class RealClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override {
    return std::chrono::steady_clock::now();
  }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::now();
  }
  bool SleepFor(std::chrono::milliseconds duration, const std::stop_token& stop) override {
    // Nothing notifies this condition variable: only the time or a stop
    // request ends the wait (the predicate never holds).
    std::mutex mutex;
    std::condition_variable_any wake;
    std::unique_lock lock(mutex);
    wake.wait_for(lock, stop, duration, [] { return false; });
    return stop.stop_requested();
  }
};

}  // namespace

Clock& Clock::Real() {
  static RealClock clock;
  return clock;
}

}  // namespace media_sync
