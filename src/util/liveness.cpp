#include "util/liveness.h"

namespace media_sync {
namespace {

thread_local std::atomic<int64_t>* current_beat = nullptr;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Liveness::Registration::Registration(Liveness* owner, Slot* slot) : owner_(owner), slot_(slot) {
  current_beat = &slot->last_beat_ns;
}

Liveness::Registration::~Registration() {
  if (current_beat == &slot_->last_beat_ns) current_beat = nullptr;
  owner_->Unregister(slot_);
}

Liveness::Registration Liveness::Register(std::string name) {
  MutexLock lock(mu_);
  Slot& slot = slots_.emplace_back();
  slot.name = std::move(name);
  slot.last_beat_ns = NowNs();
  return {this, &slot};
}

void Liveness::Beat() {
  if (current_beat != nullptr) current_beat->store(NowNs(), std::memory_order_relaxed);
}

std::vector<Liveness::Stall> Liveness::Stalled(std::chrono::milliseconds limit) const {
  std::vector<Stall> stalled;
  int64_t now = NowNs();
  MutexLock lock(mu_);
  for (const auto& slot : slots_) {
    auto since = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::nanoseconds(now - slot.last_beat_ns.load(std::memory_order_relaxed)));
    if (since > limit) stalled.push_back({slot.name, since});
  }
  return stalled;
}

void Liveness::Unregister(Slot* slot) {
  MutexLock lock(mu_);
  slots_.remove_if([slot](const Slot& candidate) { return &candidate == slot; });
}

}  // namespace media_sync
