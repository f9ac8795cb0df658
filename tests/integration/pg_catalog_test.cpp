// PgCatalog against a real PostgreSQL 15 (the shared local stack).
#include "catalog/pg_catalog.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <limits>
#include <optional>
#include <thread>
#include <vector>

#include "catalog/pg_connection.h"
#include "core/hash.h"
#include "support/local_stack.h"
#include "support/worker_harness.h"
#include "util/fd.h"

namespace media_sync::catalog {
namespace {

using media_sync::testing::SharedStack;
using media_sync::testing::Trim;
using namespace std::chrono_literals;

std::string ShaOf(const std::string& name) { return Sha256Hex(name); }

std::string KeyOf(const std::string& sha) {
  return "media/" + sha.substr(0, 2) + "/" + sha.substr(2, 2) + "/" + sha + ".jpg";
}

std::string Sql(const std::string& sql) { return Trim(SharedStack().Sql(sql)); }

void AddBox(const std::string& id, int64_t used, int64_t reserved) {
  Sql("INSERT INTO storage_boxes (id, minio_endpoint, used_bytes, reserved_bytes) VALUES ('" + id +
      "', 'http://" + id + ".example:9000', " + std::to_string(used) + ", " +
      std::to_string(reserved) + ")");
}

void AddFile(const std::string& sha, int64_t size, const std::string& box,
             const std::string& created_at = "now()") {
  std::string box_value = box.empty() ? "NULL" : "'" + box + "'";
  Sql("INSERT INTO media_files (sha256, s3_key, file_size, storage_box_id, created_at) VALUES ('" +
      sha + "', '" + KeyOf(sha) + "', " + std::to_string(size) + ", " + box_value + ", " +
      created_at + ")");
}

// `count` rows of `size` bytes on `box`, named "<name> 0", "<name> 1", ...;
// their sha256s in order.
std::vector<std::string> AddFiles(const std::string& name, int count, int64_t size,
                                  const std::string& box) {
  std::vector<std::string> shas;
  for (int i = 0; i < count; ++i) {
    shas.push_back(ShaOf(name + " " + std::to_string(i)));
    AddFile(shas.back(), size, box);
  }
  return shas;
}

std::string Counters(const std::string& box) {
  return Sql("SELECT used_bytes || '/' || reserved_bytes FROM storage_boxes WHERE id = '" + box +
             "'");
}

bool IsSynced(const std::string& sha) {
  return Sql("SELECT synced_at IS NOT NULL FROM media_files WHERE sha256 = '" + sha + "'") == "t";
}

// A loopback port with nothing listening on it.
int UnusedPort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  EXPECT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
  return ntohs(address.sin_port);
}

class PgCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override { SharedStack().Reset(); }

  static std::string DatabaseUrl() { return SharedStack().Get("DATABASE_URL"); }
};

TEST_F(PgCatalogTest, RecordsOnceAndReplayChangesNothing) {
  AddBox("box-a", 1000, 5000);
  std::string sha = ShaOf("first");
  AddFile(sha, 300, "box-a");
  PgCatalog catalog(DatabaseUrl());

  auto first = catalog.RecordSync(sha, 300, "box-a");
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(*first, RecordOutcome::kSynced);
  EXPECT_TRUE(IsSynced(sha));
  EXPECT_EQ(Counters("box-a"), "1300/4700");
  std::string synced_at = Sql("SELECT synced_at FROM media_files WHERE sha256 = '" + sha + "'");

  for (int replay = 0; replay < 3; ++replay) {
    auto again = catalog.RecordSync(sha, 300, "box-a");
    ASSERT_TRUE(again.ok()) << again.error().message;
    EXPECT_EQ(*again, RecordOutcome::kAlreadySynced);
  }
  EXPECT_EQ(Counters("box-a"), "1300/4700");
  EXPECT_EQ(Sql("SELECT synced_at FROM media_files WHERE sha256 = '" + sha + "'"), synced_at);
}

TEST_F(PgCatalogTest, ReservedBytesNeverGoBelowZero) {
  AddBox("box-a", 0, 100);
  std::string sha = ShaOf("big");
  AddFile(sha, 300, "box-a");
  PgCatalog catalog(DatabaseUrl());
  auto outcome = catalog.RecordSync(sha, 300, "box-a");
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(Counters("box-a"), "300/0");
}

TEST_F(PgCatalogTest, JobWithoutBoxOnlySetsSyncedAt) {
  AddBox("box-a", 10, 20);
  std::string sha = ShaOf("boxless");
  AddFile(sha, 300, "");
  PgCatalog catalog(DatabaseUrl());
  auto outcome = catalog.RecordSync(sha, 300, std::nullopt);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(*outcome, RecordOutcome::kSynced);
  EXPECT_TRUE(IsSynced(sha));
  EXPECT_EQ(Counters("box-a"), "10/20");
}

TEST_F(PgCatalogTest, MissingRowIsRetryableAndNamesTheSha) {
  AddBox("box-a", 10, 20);
  std::string sha = ShaOf("missing");
  PgCatalog catalog(DatabaseUrl());
  auto outcome = catalog.RecordSync(sha, 300, "box-a");
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().kind, ErrorKind::kJobRetryable);
  EXPECT_EQ(outcome.error().message, "No media_files row for sha256 " + sha);
  EXPECT_EQ(Counters("box-a"), "10/20");
}

TEST_F(PgCatalogTest, UnknownBoxRollsBackTheSync) {
  std::string sha = ShaOf("unknown box");
  AddFile(sha, 300, "");
  PgCatalog catalog(DatabaseUrl());
  auto outcome = catalog.RecordSync(sha, 300, "box-gone");
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().kind, ErrorKind::kJobRetryable);
  EXPECT_EQ(outcome.error().message, "Unknown storage box box-gone");
  EXPECT_FALSE(IsSynced(sha));
  // The connection that rolled back is usable afterwards.
  auto retried = catalog.RecordSync(sha, 300, std::nullopt);
  ASSERT_TRUE(retried.ok()) << retried.error().message;
  EXPECT_EQ(*retried, RecordOutcome::kSynced);
}

TEST_F(PgCatalogTest, ConcurrentRecordsOfOneFileCountOnce) {
  constexpr int kThreads = 16;
  constexpr int kFiles = 10;
  constexpr int64_t kSize = 1000;
  AddBox("box-a", 0, kFiles * kSize);
  const std::vector<std::string> shas = AddFiles("concurrent", kFiles, kSize, "box-a");
  // Calls for one sha256 never share a transaction: each waits for the next.
  PgCatalog catalog(DatabaseUrl());

  for (const std::string& sha : shas) {
    std::latch start(kThreads);
    std::atomic<int> synced{0};
    std::atomic<int> already{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        auto outcome = catalog.RecordSync(sha, kSize, "box-a");
        if (!outcome.ok()) {
          ++failed;
        } else if (*outcome == RecordOutcome::kSynced) {
          ++synced;
        } else {
          ++already;
        }
      });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(synced.load(), 1) << sha;
    EXPECT_EQ(already.load(), kThreads - 1) << sha;
    EXPECT_EQ(failed.load(), 0) << sha;
  }
  EXPECT_EQ(Counters("box-a"), std::to_string(kFiles * kSize) + "/0");
  EXPECT_EQ(Sql("SELECT count(*) FROM media_files WHERE synced_at IS NULL"), "0");
}

// Holds box `id`'s row lock (as another worker's transaction would) until
// Release() or the end of the scope.
class BoxLock {
 public:
  BoxLock(const std::string& database_url, const std::string& id) {
    auto connected = PgConnection::Connect(database_url, 5s, "box-lock");
    EXPECT_TRUE(connected.ok()) << connected.error().message;
    if (!connected.ok()) return;
    connection_.emplace(std::move(*connected));
    Run("BEGIN", {});
    Run("SELECT 1 FROM storage_boxes WHERE id = $1 FOR UPDATE", {id});
  }
  ~BoxLock() { Release(); }
  BoxLock(const BoxLock&) = delete;
  BoxLock& operator=(const BoxLock&) = delete;

  void Release() {
    if (connection_) Run("COMMIT", {});
    connection_.reset();
  }

 private:
  void Run(const char* sql, const std::vector<std::string>& params) {
    auto result = connection_->Execute(sql, params, PgConnection::Clock::now() + 10s);
    ASSERT_TRUE(result.ok()) << result.error().message;
  }

  std::optional<PgConnection> connection_;
};

// Whether some session waits for a row lock on storage_boxes.
bool SomeoneWaitsForABox() {
  return Sql("SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'transactionid' AND NOT "
             "granted") == "t";
}

// Group commit: calls made while a transaction is under way (here: held up
// by another session's lock on the box) share the next one. One transaction
// per call would take 16 here.
TEST_F(PgCatalogTest, CallsMadeMeanwhileShareOneTransaction) {
  constexpr int kCalls = 16;
  constexpr int64_t kSize = 100;
  AddBox("box-a", 0, kCalls * kSize);
  const std::vector<std::string> shas = AddFiles("batched", kCalls, kSize, "box-a");
  PgCatalog catalog(DatabaseUrl());
  BoxLock lock(DatabaseUrl(), "box-a");
  std::vector<Result<RecordOutcome>> outcomes(kCalls, Error::Outage("not answered"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] { outcomes[i] = catalog.RecordSync(shas[i], kSize, "box-a"); });
  }
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return catalog.Stats().unanswered_syncs == kCalls && SomeoneWaitsForABox(); }, 10s));
  lock.Release();
  for (auto& thread : threads) thread.join();

  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(outcomes[i].ok()) << outcomes[i].error().message;
    EXPECT_EQ(*outcomes[i], RecordOutcome::kSynced) << i;
  }
  EXPECT_LE(catalog.Stats().sync_batches, 2u);
  EXPECT_EQ(Counters("box-a"), std::to_string(kCalls * kSize) + "/0");
  EXPECT_EQ(catalog.Stats().unanswered_syncs, 0);
}

// In one transaction each call keeps its own outcome: a missing row and an
// unknown box are those calls' faults and change nothing, the others sync,
// and a second call for a sha256 already in the batch waits for the next
// transaction and counts nothing.
TEST_F(PgCatalogTest, EachCallInASharedTransactionHasItsOwnOutcome) {
  AddBox("box-a", 0, 30);
  AddBox("box-b", 0, 0);
  const std::string good = ShaOf("good"), twice = ShaOf("twice"), no_row = ShaOf("no row"),
                    no_box = ShaOf("no box"), boxless = ShaOf("boxless");
  AddFile(good, 10, "box-a");
  AddFile(twice, 20, "box-a");
  AddFile(no_box, 5, "box-b");
  AddFile(boxless, 7, "");
  struct Call {
    std::string sha;
    uint64_t size;
    std::optional<std::string> box;
  };
  const std::vector<Call> calls = {{good, 10, "box-a"},     {twice, 20, "box-a"},
                                   {twice, 20, "box-a"},    {no_row, 1, "box-a"},
                                   {no_box, 5, "box-gone"}, {boxless, 7, std::nullopt}};
  PgCatalog catalog(DatabaseUrl());
  BoxLock lock(DatabaseUrl(), "box-a");
  std::vector<Result<RecordOutcome>> outcomes(calls.size(), Error::Outage("not answered"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < calls.size(); ++i) {
    threads.emplace_back(
        [&, i] { outcomes[i] = catalog.RecordSync(calls[i].sha, calls[i].size, calls[i].box); });
  }
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return catalog.Stats().unanswered_syncs == static_cast<int>(calls.size()) &&
               SomeoneWaitsForABox();
      },
      10s));
  lock.Release();
  for (auto& thread : threads) thread.join();

  ASSERT_TRUE(outcomes[0].ok()) << outcomes[0].error().message;
  EXPECT_EQ(*outcomes[0], RecordOutcome::kSynced);
  ASSERT_TRUE(outcomes[1].ok() && outcomes[2].ok());
  EXPECT_EQ((*outcomes[1] == RecordOutcome::kSynced) + (*outcomes[2] == RecordOutcome::kSynced), 1);
  ASSERT_FALSE(outcomes[3].ok());
  EXPECT_EQ(outcomes[3].error().message, "No media_files row for sha256 " + no_row);
  ASSERT_FALSE(outcomes[4].ok());
  EXPECT_EQ(outcomes[4].error().message, "Unknown storage box box-gone");
  EXPECT_FALSE(IsSynced(no_box));
  ASSERT_TRUE(outcomes[5].ok()) << outcomes[5].error().message;
  EXPECT_EQ(*outcomes[5], RecordOutcome::kSynced);
  EXPECT_EQ(Counters("box-a"), "30/0");
  EXPECT_EQ(Counters("box-b"), "0/0");
}

// PostgreSQL refuses the statement a transaction shares for the values of
// one call (a NUL byte, which text cannot hold; bytes that are not UTF-8; a
// box counter pushed past bigint): each such call fails alone with a job
// error naming the refusal, never an outage, and the calls that shared its
// transaction are committed without it.
TEST_F(PgCatalogTest, ACallWhoseValuesAreRefusedFailsAloneAndTheOthersCommit) {
  constexpr int kGood = 8;
  constexpr int64_t kSize = 100;
  const int64_t almost_full = std::numeric_limits<int64_t>::max() - 10;
  AddBox("box-a", 0, kGood * kSize);
  AddBox("box-full", almost_full, 0);
  const std::vector<std::string> good = AddFiles("good", kGood, kSize, "box-a");
  const std::string nul = ShaOf("nul"), not_utf8 = ShaOf("not utf8"), overflow = ShaOf("overflow");
  AddFile(nul, kSize, "box-a");
  AddFile(not_utf8, kSize, "box-a");
  AddFile(overflow, kSize, "box-full");
  struct Call {
    std::string sha;
    std::string box;
    std::string sqlstate;  // of the refusal; empty for a good call
  };
  std::vector<Call> calls;
  for (const std::string& sha : good) calls.push_back({sha, "box-a", ""});
  calls.insert(calls.begin() + 3, Call{nul, std::string("box-a\0x", 7), "22021"});
  calls.insert(calls.begin() + 5, Call{not_utf8, "box-\xff", "22021"});
  calls.push_back(Call{overflow, "box-full", "22003"});

  PgCatalog catalog(DatabaseUrl());
  BoxLock lock(DatabaseUrl(), "box-a");
  std::vector<Result<RecordOutcome>> outcomes(calls.size(), Error::Outage("not answered"));
  std::vector<std::thread> threads;
  auto call = [&](size_t i) {
    threads.emplace_back(
        [&, i] { outcomes[i] = catalog.RecordSync(calls[i].sha, kSize, calls[i].box); });
  };
  // The first call's transaction waits for box-a's lock; every other call
  // made meanwhile waits for the next transaction, which they share.
  call(0);
  ASSERT_TRUE(testing::WaitUntil(SomeoneWaitsForABox, 10s));
  for (size_t i = 1; i < calls.size(); ++i) call(i);
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return catalog.Stats().unanswered_syncs == static_cast<int>(calls.size()); }, 10s));
  lock.Release();
  for (auto& thread : threads) thread.join();

  for (size_t i = 0; i < calls.size(); ++i) {
    if (calls[i].sqlstate.empty()) {
      ASSERT_TRUE(outcomes[i].ok()) << i << ": " << outcomes[i].error().message;
      EXPECT_EQ(*outcomes[i], RecordOutcome::kSynced) << i;
      continue;
    }
    ASSERT_FALSE(outcomes[i].ok()) << i;
    const Error& error = outcomes[i].error();
    EXPECT_EQ(error.kind, ErrorKind::kJobPermanent) << error.message;
    EXPECT_EQ(error.fault, FaultClass::kInvalidJob);
    EXPECT_EQ(error.code, calls[i].sqlstate) << error.message;
    EXPECT_NE(error.message.find("PostgreSQL refused the values: "), std::string::npos)
        << error.message;
    EXPECT_FALSE(IsSynced(calls[i].sha));
  }
  EXPECT_NE(outcomes[5].error().message.find("invalid byte sequence"), std::string::npos);
  EXPECT_NE(outcomes.back().error().message.find("bigint out of range"), std::string::npos);
  EXPECT_EQ(Counters("box-a"), std::to_string(kGood * kSize) + "/0");
  EXPECT_EQ(Counters("box-full"), std::to_string(almost_full) + "/0");
  EXPECT_EQ(catalog.Stats().unanswered_syncs, 0);

  // A call alone whose values are refused is the same job error.
  auto alone = catalog.RecordSync(not_utf8, kSize, "box-\xfe");
  ASSERT_FALSE(alone.ok());
  EXPECT_EQ(alone.error().kind, ErrorKind::kJobPermanent) << alone.error().message;
}

// Two workers (two catalogs, each batching its own threads' calls) syncing
// the same files at once count each file once.
TEST_F(PgCatalogTest, TwoWorkersBatchingTheSameFilesCountEachOnce) {
  constexpr int kFiles = 40;
  constexpr int kThreadsEach = 8;
  constexpr int64_t kSize = 10;
  AddBox("box-a", 0, kFiles * kSize);
  const std::vector<std::string> shas = AddFiles("two workers", kFiles, kSize, "box-a");
  PgCatalog first(DatabaseUrl());
  PgCatalog second(DatabaseUrl());
  std::atomic<int> synced{0};
  std::atomic<int> failed{0};
  std::latch start(2 * kThreadsEach);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * kThreadsEach; ++t) {
    threads.emplace_back([&, t] {
      PgCatalog& catalog = t % 2 == 0 ? first : second;
      start.arrive_and_wait();
      // Each worker's threads go through every file, the second in reverse.
      for (int i = t / 2; i < kFiles; i += kThreadsEach) {
        const std::string& sha = t % 2 == 0 ? shas[i] : shas[kFiles - 1 - i];
        auto outcome = catalog.RecordSync(sha, kSize, "box-a");
        if (!outcome.ok()) {
          ++failed;
        } else if (*outcome == RecordOutcome::kSynced) {
          ++synced;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(synced.load(), kFiles);
  EXPECT_EQ(Counters("box-a"), std::to_string(kFiles * kSize) + "/0");
  EXPECT_EQ(Sql("SELECT count(*) FROM media_files WHERE synced_at IS NULL"), "0");
}

TEST_F(PgCatalogTest, PoolReusesConnections) {
  AddBox("box-a", 0, 0);
  PgCatalogOptions options;
  options.pool_size = 3;
  options.application_name = "media-sync-pool-test";
  PgCatalog catalog(DatabaseUrl(), options);
  EXPECT_EQ(catalog.Stats().connects, 0u);  // lazily connected

  for (int i = 0; i < 50; ++i) {
    auto endpoint = catalog.BoxEndpoint("box-a");
    ASSERT_TRUE(endpoint.ok()) << endpoint.error().message;
  }
  EXPECT_EQ(catalog.Stats().connects, 1u);

  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        if (!catalog.BoxEndpoint("box-a").ok()) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  PgCatalogStats stats = catalog.Stats();
  EXPECT_LE(stats.connects, 3u);
  EXPECT_LE(stats.open_connections, 3);
  EXPECT_EQ(stats.idle_connections, stats.open_connections);
  int server_side = std::stoi(
      Sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'media-sync-pool-test'"));
  EXPECT_EQ(server_side, stats.open_connections);
}

TEST_F(PgCatalogTest, WorksAgainAfterPostgresRestart) {
  AddBox("box-a", 0, 0);
  PgCatalogOptions options;
  options.pool_size = 2;
  PgCatalog catalog(DatabaseUrl(), options);
  ASSERT_TRUE(catalog.BoxEndpoint("box-a").ok());
  EXPECT_EQ(catalog.Stats().connects, 1u);

  SharedStack().Restart("postgres");

  // The pooled connection died with the old server; the call notices,
  // reconnects and succeeds.
  auto endpoint = catalog.BoxEndpoint("box-a");
  ASSERT_TRUE(endpoint.ok()) << endpoint.error().message;
  EXPECT_EQ(endpoint->value_or(""), "http://box-a.example:9000");
  EXPECT_EQ(catalog.Stats().connects, 2u);

  std::string sha = ShaOf("after restart");
  AddFile(sha, 10, "box-a");
  auto outcome = catalog.RecordSync(sha, 10, "box-a");
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(*outcome, RecordOutcome::kSynced);
  EXPECT_EQ(Counters("box-a"), "10/0");
}

TEST_F(PgCatalogTest, ServerDownIsOutageWithoutPassword) {
  std::string url =
      "postgresql://postgres:Sup3rSecretPw@127.0.0.1:" + std::to_string(UnusedPort()) + "/media";
  PgCatalog catalog(url);
  auto started = std::chrono::steady_clock::now();
  auto outcome = catalog.RecordSync(ShaOf("down"), 1, "box-a");
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().kind, ErrorKind::kOutage);
  EXPECT_EQ(outcome.error().message.rfind("PostgreSQL unavailable: ", 0), 0u)
      << outcome.error().message;
  EXPECT_EQ(outcome.error().message.find("Sup3rSecretPw"), std::string::npos);
  auto endpoint = catalog.BoxEndpoint("box-a");
  ASSERT_FALSE(endpoint.ok());
  EXPECT_EQ(endpoint.error().kind, ErrorKind::kOutage);
  UnsyncedCursor cursor;
  auto unsynced = catalog.UnsyncedAfter(cursor, 10, 0);
  ASSERT_FALSE(unsynced.ok());
  EXPECT_EQ(unsynced.error().kind, ErrorKind::kOutage);
  EXPECT_TRUE(cursor.created_at.empty()) << "the cursor moved on an error";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_EQ(catalog.Stats().open_connections, 0);
}

TEST_F(PgCatalogTest, SilentServerTimesOutAsOutage) {
  // Accepts TCP connections (the kernel completes them) but never answers.
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener.get(), 16), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);

  PgCatalogOptions options;
  options.connect_timeout = 1s;
  PgCatalog catalog("postgresql://postgres@127.0.0.1:" + std::to_string(ntohs(address.sin_port)) +
                        "/media?sslmode=disable",
                    options);
  auto started = std::chrono::steady_clock::now();
  auto outcome = catalog.BoxEndpoint("box-a");
  auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().kind, ErrorKind::kOutage) << outcome.error().message;
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 4s);
}

TEST_F(PgCatalogTest, QueryPastItsDeadlineIsOutageAndCountsNothing) {
  AddBox("box-a", 0, 0);
  std::string sha = ShaOf("locked");
  AddFile(sha, 10, "box-a");
  // Another session holds the row lock for 3 s.
  std::thread holder([&] {
    Sql("BEGIN; SELECT 1 FROM media_files WHERE sha256 = '" + sha +
        "' FOR UPDATE; SELECT pg_sleep(3); COMMIT;");
  });
  // The holder's FOR UPDATE keeps a RowShareLock on the table until COMMIT.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return Sql("SELECT count(*) FROM pg_locks WHERE relation = 'media_files'::regclass "
                   "AND mode = 'RowShareLock' AND granted AND pid <> pg_backend_pid()") == "1";
      },
      3s));
  PgCatalogOptions options;
  options.query_timeout = 1s;
  PgCatalog catalog(DatabaseUrl(), options);
  auto started = std::chrono::steady_clock::now();
  auto blocked = catalog.RecordSync(sha, 10, "box-a");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2500ms);
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.error().kind, ErrorKind::kOutage) << blocked.error().message;
  EXPECT_EQ(catalog.Stats().open_connections, 0);  // the timed-out connection is gone
  holder.join();

  // The abandoned statement never commits: the retry is the one that counts.
  PgCatalog patient(DatabaseUrl());
  auto retried = patient.RecordSync(sha, 10, "box-a");
  ASSERT_TRUE(retried.ok()) << retried.error().message;
  EXPECT_EQ(*retried, RecordOutcome::kSynced);
  EXPECT_EQ(Counters("box-a"), "10/0");
}

// A transaction cut by the server while it runs (what a failover does: the
// primary terminates its sessions, 57P01) is an outage and changes nothing:
// the sync is redone, on whichever server is the primary then, and counted
// once; a replay after it changes nothing either.
TEST_F(PgCatalogTest, ATransactionCutByTheServerIsRedoneAndCountedOnce) {
  AddBox("box-a", 0, 10);
  std::string sha = ShaOf("cut");
  AddFile(sha, 10, "box-a");
  // Another session holds box-a's row for 3 s: the sync marks its row, then
  // waits for that lock inside its transaction.
  std::thread holder([&] {
    Sql("SET application_name = 'box-holder'; BEGIN; SELECT 1 FROM storage_boxes WHERE id = "
        "'box-a' FOR UPDATE; SELECT pg_sleep(3); COMMIT;");
  });
  auto activity = [](const std::string& where) {
    return Sql("SELECT count(*) FROM pg_stat_activity WHERE " + where) == "1";
  };
  ASSERT_TRUE(media_sync::testing::WaitUntil(
      [&] { return activity("application_name = 'box-holder' AND query LIKE '%pg_sleep%'"); },
      10s));
  PgCatalogOptions options;
  options.application_name = "media-sync-cut";
  PgCatalog catalog(DatabaseUrl(), options);
  Result<RecordOutcome> cut = RecordOutcome::kSynced;
  std::thread syncing([&] { cut = catalog.RecordSync(sha, 10, "box-a"); });
  bool waiting = media_sync::testing::WaitUntil(
      [&] { return activity("application_name = 'media-sync-cut' AND wait_event_type = 'Lock'"); },
      10s);
  Sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
      "'media-sync-cut'");
  syncing.join();
  holder.join();
  ASSERT_TRUE(waiting);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().kind, ErrorKind::kOutage) << cut.error().message;
  EXPECT_FALSE(IsSynced(sha));
  EXPECT_EQ(Counters("box-a"), "0/10");

  auto redone = catalog.RecordSync(sha, 10, "box-a");
  ASSERT_TRUE(redone.ok()) << redone.error().message;
  EXPECT_EQ(*redone, RecordOutcome::kSynced);
  EXPECT_EQ(Counters("box-a"), "10/0");
  auto replayed = catalog.RecordSync(sha, 10, "box-a");
  ASSERT_TRUE(replayed.ok()) << replayed.error().message;
  EXPECT_EQ(*replayed, RecordOutcome::kAlreadySynced);
  EXPECT_EQ(Counters("box-a"), "10/0");
}

TEST_F(PgCatalogTest, MissingSchemaIsConfiguration) {
  if (Sql("SELECT count(*) FROM pg_database WHERE datname = 'media_sync_no_schema'") == "0") {
    Sql("CREATE DATABASE media_sync_no_schema");
  }
  std::string url = DatabaseUrl();
  size_t slash = url.find('/', url.find("//") + 2);
  size_t query = url.find('?', slash);
  url = url.substr(0, slash) + "/media_sync_no_schema" +
        (query == std::string::npos ? "" : url.substr(query));
  PgCatalog catalog(url);
  auto outcome = catalog.RecordSync(ShaOf("schema"), 1, std::nullopt);
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().kind, ErrorKind::kConfiguration);
  EXPECT_NE(outcome.error().message.find("media_files"), std::string::npos)
      << outcome.error().message;
  // The connection survives a rejected statement: no reconnect per call.
  auto endpoint = catalog.BoxEndpoint("box-a");
  ASSERT_FALSE(endpoint.ok());
  EXPECT_EQ(endpoint.error().kind, ErrorKind::kConfiguration);
  EXPECT_EQ(catalog.Stats().connects, 1u);
}

TEST_F(PgCatalogTest, InvalidConnectionStringIsConfiguration) {
  PgCatalog catalog("postgresql://postgres@127.0.0.1:notaport/media?bogus_option=1");
  auto outcome = catalog.BoxEndpoint("box-a");
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().kind, ErrorKind::kConfiguration) << outcome.error().message;
}

TEST_F(PgCatalogTest, BoxEndpointFoundOrMissing) {
  AddBox("box-a", 0, 0);
  PgCatalog catalog(DatabaseUrl());
  auto found = catalog.BoxEndpoint("box-a");
  ASSERT_TRUE(found.ok()) << found.error().message;
  EXPECT_EQ(found->value_or(""), "http://box-a.example:9000");
  auto missing = catalog.BoxEndpoint("box-nope");
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_FALSE(missing->has_value());
  // Hostile ids are parameters, not SQL.
  auto hostile = catalog.BoxEndpoint("x' OR '1'='1");
  ASSERT_TRUE(hostile.ok()) << hostile.error().message;
  EXPECT_FALSE(hostile->has_value());
}

TEST_F(PgCatalogTest, UnsyncedAfterPagesThroughOldUnsyncedRowsOldestFirst) {
  AddBox("box-a", 0, 0);
  std::string oldest = ShaOf("oldest");
  std::string older = ShaOf("older");
  std::string recent = ShaOf("recent");
  std::string synced = ShaOf("synced");
  AddFile(older, 20, "", "now() - interval '1 hour'");
  AddFile(oldest, 10, "box-a", "now() - interval '2 hours'");
  AddFile(recent, 30, "box-a", "now()");
  AddFile(synced, 40, "box-a", "now() - interval '3 hours'");
  Sql("UPDATE media_files SET synced_at = now() WHERE sha256 = '" + synced + "'");
  PgCatalog catalog(DatabaseUrl());
  auto page = [&](UnsyncedCursor& cursor, int limit, int older_than) {
    auto files = catalog.UnsyncedAfter(cursor, limit, older_than);
    EXPECT_TRUE(files.ok()) << files.error().message;
    std::vector<std::string> shas;
    if (files.ok()) {
      for (const auto& file : *files) shas.push_back(file.sha256);
    }
    return shas;
  };

  UnsyncedCursor cursor;
  auto files = catalog.UnsyncedAfter(cursor, 10, 60);
  ASSERT_TRUE(files.ok()) << files.error().message;
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].sha256, oldest);
  EXPECT_EQ((*files)[0].s3_key, KeyOf(oldest));
  EXPECT_EQ((*files)[0].file_size, 10u);
  EXPECT_EQ((*files)[0].storage_box_id.value_or(""), "box-a");
  EXPECT_EQ((*files)[1].sha256, older);
  EXPECT_FALSE((*files)[1].storage_box_id.has_value());
  EXPECT_EQ(cursor.sha256, older);
  EXPECT_TRUE(page(cursor, 10, 60).empty()) << "a page past the last row";

  // One row a page, each page after the last.
  UnsyncedCursor one_by_one;
  EXPECT_EQ(page(one_by_one, 1, 60), std::vector<std::string>{oldest});
  EXPECT_EQ(page(one_by_one, 1, 60), std::vector<std::string>{older});
  EXPECT_TRUE(page(one_by_one, 1, 60).empty());

  UnsyncedCursor including_recent;
  EXPECT_EQ(page(including_recent, 10, -60), (std::vector<std::string>{oldest, older, recent}));

  UnsyncedCursor none;
  EXPECT_TRUE(page(none, 0, 60).empty());
  EXPECT_TRUE(none.created_at.empty()) << "an empty page moved the cursor";
}

}  // namespace
}  // namespace media_sync::catalog
