#include "support/hostile_clients.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <random>

#include "support/raw_http.h"

namespace media_sync::testing {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kMiB = int64_t{1} << 20;

// `count` connections kept open, each having sent `opening` (nothing, or a
// request never finished); one the endpoint closes is opened again.
class HeldConnections final : public HostileLoad {
 public:
  HeldConnections(int port, int count, std::string opening)
      : thread_([this, port, count, opening = std::move(opening)](const std::stop_token& stop) {
          std::vector<std::unique_ptr<RawConnection>> held;
          auto open = [&] {
            auto connection = std::make_unique<RawConnection>(port);
            if (!opening.empty()) connection->Send(opening, 1s);
            ++opened_;
            return connection;
          };
          for (int i = 0; i < count; ++i) held.push_back(open());
          while (Pause(stop, 100ms)) {
            for (auto& connection : held) {
              if (connection->Closed(0ms)) connection = open();
            }
          }
        }) {}
  std::string Done() const override { return "connections " + std::to_string(opened_.load()); }

 private:
  std::atomic<int64_t> opened_ = 0;
  std::jthread thread_;
};

// `count` clients each sending a request head for `path` one byte a second,
// started again when the server cuts them.
class Tricklers final : public HostileLoad {
 public:
  Tricklers(int port, int count, const std::string& path)
      : thread_([this, port, count, path](const std::stop_token& stop) {
          const std::string start = "GET " + path + " HTTP/1.1\r\nHost: x\r\nX-Trickle: ";
          std::vector<std::unique_ptr<RawConnection>> clients;
          for (int i = 0; i < count; ++i) {
            clients.push_back(std::make_unique<RawConnection>(port));
            clients.back()->Send(start, 1s);
          }
          while (Pause(stop, 1000ms)) {
            for (auto& client : clients) {
              if (!client->Send("a", 100ms) || client->Closed(0ms)) {
                ++cut_;
                client = std::make_unique<RawConnection>(port);
                client->Send(start, 1s);
              }
            }
          }
        }) {}
  std::string Done() const override { return "cut " + std::to_string(cut_.load()); }

 private:
  std::atomic<int64_t> cut_ = 0;
  std::jthread thread_;
};

// One client after another, each sending `bytes` (as much as the endpoint
// takes) and waiting for the endpoint to close.
class Flood final : public HostileLoad {
 public:
  Flood(int port, std::string bytes)
      : thread_([this, port, bytes = std::move(bytes)](const std::stop_token& stop) {
          while (!stop.stop_requested()) {
            RawConnection client(port);
            client.Send(bytes, 2s);
            client.Closed(2s);
            ++clients_;
          }
        }) {}
  std::string Done() const override { return "clients " + std::to_string(clients_.load()); }

 private:
  std::atomic<int64_t> clients_ = 0;
  std::jthread thread_;
};

// `count` connections asking for `path` over and over (kept alive, as
// Prometheus does), all requests sent before any response is read.
class Scrapers final : public HostileLoad {
 public:
  Scrapers(int port, int count, const std::string& path)
      : thread_([this, port, count, path](const std::stop_token& stop) {
          const std::string scrape = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
          std::vector<std::unique_ptr<RawConnection>> scrapers;
          for (int i = 0; i < count; ++i) scrapers.push_back(std::make_unique<RawConnection>(port));
          while (!stop.stop_requested()) {
            for (auto& scraper : scrapers) scraper->Send(scrape, 1s);
            for (auto& scraper : scrapers) {
              if (stop.stop_requested()) break;
              if (int status = scraper->ReadResponse(5s).status; status == 200 || status == 503) {
                ++answered_;
              } else {
                scraper = std::make_unique<RawConnection>(port);
              }
            }
          }
        }) {}
  std::string Done() const override { return "scrapes " + std::to_string(answered_.load()); }

 private:
  std::atomic<int64_t> answered_ = 0;
  std::jthread thread_;
};

// POST `path` announcing a 1 GiB body and sending it, connection after
// connection, until 1 GiB was offered in all; stops early once the server's
// memory went past the bound (the test has failed by then).
class GibibytePost final : public HostileLoad {
 public:
  GibibytePost(int port, const std::atomic<bool>& over_memory, const std::string& path)
      : thread_([this, port, &over_memory, path](const std::stop_token& stop) {
          constexpr int64_t kBody = int64_t{1} << 30;
          const std::string chunk(256 * 1024, 'x');
          int64_t offered = 0;
          while (!stop.stop_requested() && !over_memory && offered < kBody) {
            RawConnection client(port);
            ++connections_;
            if (!client.Send("POST " + path +
                                 " HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                                 "Content-Length: " +
                                 std::to_string(kBody) + "\r\n\r\n",
                             1s)) {
              continue;
            }
            int64_t taken = 0;
            while (!stop.stop_requested() && !over_memory && offered < kBody &&
                   client.Send(chunk, 1s)) {
              taken += static_cast<int64_t>(chunk.size());
              offered += static_cast<int64_t>(chunk.size());
            }
            most_taken_ = std::max(most_taken_.load(), taken);
          }
          offered_ = offered;
        }) {}
  std::string Done() const override {
    return "connections " + std::to_string(connections_.load()) + ", most taken by one " +
           std::to_string(most_taken_.load() / kMiB) + " MiB";
  }

 private:
  std::atomic<int64_t> connections_ = 0;
  std::atomic<int64_t> most_taken_ = 0;
  std::atomic<int64_t> offered_ = 0;
  std::jthread thread_;
};

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string bytes(size, '\0');
  for (char& byte : bytes) byte = static_cast<char>(random());
  return bytes;
}

}  // namespace

bool Pause(const std::stop_token& stop, std::chrono::milliseconds period) {
  std::mutex mutex;
  std::condition_variable_any wake;
  std::unique_lock lock(mutex);
  wake.wait_for(lock, stop, period, [] { return false; });
  return !stop.stop_requested();
}

void PrintTo(const Load& load, std::ostream* out) { *out << load.name; }

std::vector<Load> HostileLoads(const std::string& path) {
  return {
      Load{"IdleConnections",
           [](int port, const std::atomic<bool>&) {
             return std::make_unique<HeldConnections>(port, 32, "");
           }},
      Load{"HeadersTrickledAByteASecond",
           [path](int port, const std::atomic<bool>&) {
             return std::make_unique<Tricklers>(port, 8, path);
           }},
      Load{"MebibyteRequestLine",
           [](int port, const std::atomic<bool>&) {
             return std::make_unique<Flood>(port, "GET /" + std::string(kMiB, 'a'));
           }},
      Load{"MebibyteHeader",
           [path](int port, const std::atomic<bool>&) {
             return std::make_unique<Flood>(
                 port, "GET " + path + " HTTP/1.1\r\nX-Big: " + std::string(kMiB, 'a'));
           }},
      Load{"BinaryJunk",
           [](int port, const std::atomic<bool>&) {
             return std::make_unique<Flood>(port, RandomBytes(256 * 1024, 7));
           }},
      Load{"TwoHundredConcurrentScrapes",
           [path](int port, const std::atomic<bool>&) {
             return std::make_unique<Scrapers>(port, 200, path);
           }},
      Load{"GibibytePostBody",
           [path](int port, const std::atomic<bool>& over_memory) {
             return std::make_unique<GibibytePost>(port, over_memory, path);
           }},
  };
}

MemoryWatch::MemoryWatch(pid_t pid, int64_t limit)
    : thread_([this, pid, limit](const std::stop_token& stop) {
        do {
          int64_t resident = ResidentBytes(pid);
          peak_ = std::max(peak_.load(), resident);
          if (resident > limit) over_ = true;
        } while (Pause(stop, 50ms));
      }) {}

std::map<std::string, std::string> WithBoundedQuarantine(std::map<std::string, std::string> env) {
#if defined(__SANITIZE_ADDRESS__)
  const char* asan = std::getenv("ASAN_OPTIONS");
  env["ASAN_OPTIONS"] =
      (asan == nullptr || *asan == '\0' ? "" : std::string(asan) + ":") + "quarantine_size_mb=4";
#endif
  return env;
}

}  // namespace media_sync::testing
