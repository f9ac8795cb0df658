#include "queue/queue_keys.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <random>

namespace media_sync::queue {

std::string ProcessingKey(std::string_view worker_id) {
  return std::string(kProcessingKeyPrefix) + std::string(worker_id);
}

std::string HeartbeatKey(std::string_view worker_id) {
  return std::string(kHeartbeatKeyPrefix) + std::string(worker_id);
}

std::string MakeWorkerId() {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  // The random part keeps ids distinct when pids repeat (containers, restarts):
  // a new process must never adopt a dead one's processing list.
  std::random_device entropy;
  std::array<char, 16> suffix{};
  std::snprintf(suffix.data(), suffix.size(), "%08x", static_cast<unsigned>(entropy()));
  std::string name = host[0] != '\0' ? host.data() : "worker";
  return name + "-" + std::to_string(getpid()) + "-" + suffix.data();
}

}  // namespace media_sync::queue
