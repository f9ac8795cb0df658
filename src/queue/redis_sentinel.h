// RedisSentinel: where the master of a Redis behind Sentinels is now, for
// RedisConnection (redis+sentinel:// addresses). Discovery is kept apart
// from the connection to the master, as redis-plus-plus keeps its Sentinel
// apart from its connection pool: this class asks, RedisConnection connects,
// checks ROLE and decides when to ask again.
//
// Master() asks the Sentinels one after the other, starting with the last
// one that answered, for the address of the named master (SENTINEL
// get-master-addr-by-name), and believes the first that knows it: Sentinels
// are not told apart from one another. The connection to the Sentinel that
// answered stays open for the next ask; any failure closes it.
//
// Ownership: owns its hiredis context (RAII, move-only).
// Thread-safety: none; it belongs to the RedisConnection that holds it.
// Errors of Master():
//   kOutage         no Sentinel answered (each one's reason is in the
//                   message), or one answered something that is no address
//   kConfiguration  every Sentinel that answered knows no master of that
//                   name, or a Sentinel rejected the credentials (or wants
//                   some: sentinel_password=)
// Messages name "Sentinel host:port" and never carry a password.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

#include "config/urls.h"
#include "core/result.h"
#include "queue/hiredis_context.h"

namespace media_sync::queue {

class RedisSentinel {
 public:
  // `address` names the Sentinels, the master and the credentials; `timeout`
  // bounds connecting to one Sentinel and its answer: a Sentinel that takes
  // longer is skipped for the next.
  RedisSentinel(config::RedisAddress address, std::chrono::milliseconds timeout);
  ~RedisSentinel();
  RedisSentinel(RedisSentinel&&) noexcept;
  RedisSentinel& operator=(RedisSentinel&&) noexcept;
  RedisSentinel(const RedisSentinel&) = delete;
  RedisSentinel& operator=(const RedisSentinel&) = delete;

  // The master's address from the first Sentinel that knows it.
  Result<config::HostPort> Master();
  // Closes the connection to the Sentinel; the next Master() reconnects.
  void Disconnect() { context_.reset(); }

 private:
  // One Sentinel: the address, nullopt when it knows no such master, or the
  // reason it gave none.
  Result<std::optional<config::HostPort>> Ask(size_t index);
  // Connects to sentinels[index] (and authenticates) unless connected to it.
  Status ConnectTo(size_t index);

  config::RedisAddress address_;
  std::chrono::milliseconds timeout_;
  RedisContextPtr context_;  // to address_.sentinels[index_], when open
  size_t index_ = 0;         // the Sentinel asked first
};

}  // namespace media_sync::queue
