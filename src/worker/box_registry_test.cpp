#include "worker/box_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

namespace media_sync::worker {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class NullStore : public ObjectStore {
 public:
  explicit NullStore(std::string endpoint) : endpoint(std::move(endpoint)) {}
  Result<std::optional<ObjectInfo>> Stat(const std::string&, std::stop_token) override {
    return std::optional<ObjectInfo>();
  }
  Result<ObjectInfo> Upload(const std::string&, int, uint64_t, const std::string&,
                            std::stop_token) override {
    return ObjectInfo{};
  }
  std::string endpoint;
};

class BoxCatalog : public Catalog {
 public:
  Result<RecordOutcome> RecordSync(const std::string&, uint64_t,
                                   const std::optional<std::string>&) override {
    return RecordOutcome::kSynced;
  }
  Result<std::optional<std::string>> BoxEndpoint(const std::string& box) override {
    ++lookups;
    if (down) return Error::Outage("PostgreSQL unavailable");
    auto it = endpoints.find(box);
    if (it == endpoints.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  std::map<std::string, std::string> endpoints;
  int lookups = 0;
  bool down = false;
};

class BoxRegistryTest : public ::testing::Test {
 protected:
  BoxRegistryTest() {
    defaults_.endpoint = "default:9000";
    catalog_.endpoints["russia-1"] = "minio-russia-1:9000";
    catalog_.endpoints["tls-box"] = "https://secure.example:9443/";
  }
  BoxRegistry Make(int max_in_flight = 0, int threads = 4) {
    BoxRegistry::Settings settings;
    settings.threads = threads;
    settings.refresh = 30s;
    settings.first_backoff = 1000ms;
    settings.max_backoff = 8s;
    settings.probe_timeout = 60s;
    settings.max_in_flight = max_in_flight;
    auto factory = [this](const s3::S3Options& options) -> Result<std::shared_ptr<ObjectStore>> {
      built_.push_back(options);
      return std::shared_ptr<ObjectStore>(std::make_shared<NullStore>(options.endpoint));
    };
    return {defaults_, catalog_, factory, settings, [this] { return now_; }};
  }
  static std::string EndpointOf(const std::shared_ptr<ObjectStore>& store) {
    return static_cast<NullStore&>(*store).endpoint;
  }

  s3::S3Options defaults_;
  BoxCatalog catalog_;
  std::vector<s3::S3Options> built_;
  std::chrono::system_clock::time_point now_{1700000000s};
};

TEST_F(BoxRegistryTest, JobWithoutBoxUsesTheDefaultEndpoint) {
  BoxRegistry registry = Make();
  auto store = registry.ForBox(std::nullopt);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(EndpointOf(*store), "default:9000");
  EXPECT_EQ(catalog_.lookups, 0);
}

TEST_F(BoxRegistryTest, CachesPerBoxAndRereadsAfterRefresh) {
  BoxRegistry registry = Make();
  auto first = registry.ForBox("russia-1");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(EndpointOf(*first), "minio-russia-1:9000");
  auto again = registry.ForBox("russia-1");
  EXPECT_EQ(first->get(), again->get());
  EXPECT_EQ(catalog_.lookups, 1);

  now_ += 31s;
  auto same = registry.ForBox("russia-1");
  EXPECT_EQ(catalog_.lookups, 2);
  EXPECT_EQ(first->get(), same->get());  // endpoint unchanged: store kept

  catalog_.endpoints["russia-1"] = "minio-russia-2:9000";
  now_ += 31s;
  auto changed = registry.ForBox("russia-1");
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(EndpointOf(*changed), "minio-russia-2:9000");
  EXPECT_NE(first->get(), changed->get());
}

TEST_F(BoxRegistryTest, EndpointUrlsSelectTheScheme) {
  BoxRegistry registry = Make();
  ASSERT_TRUE(registry.ForBox("tls-box").ok());
  ASSERT_EQ(built_.size(), 1u);
  EXPECT_EQ(built_[0].endpoint, "secure.example:9443");
  EXPECT_TRUE(built_[0].secure);
  EXPECT_FALSE(BoxRegistry::OptionsForEndpoint(defaults_, "ftp://x:1").ok());
  auto plain = BoxRegistry::OptionsForEndpoint(defaults_, "http://a:1");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->secure);
}

TEST_F(BoxRegistryTest, UnknownBoxIsAJobFault) {
  BoxRegistry registry = Make();
  auto store = registry.ForBox("mars-1");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, ErrorKind::kJobRetryable);
  EXPECT_EQ(store.error().message, "Unknown storage box mars-1");
}

TEST_F(BoxRegistryTest, CatalogOutageKeepsKnownBoxesWorking) {
  BoxRegistry registry = Make();
  ASSERT_TRUE(registry.ForBox("russia-1").ok());
  catalog_.down = true;
  now_ += 31s;
  EXPECT_TRUE(registry.ForBox("russia-1").ok());
  auto unknown = registry.ForBox("tls-box");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind, ErrorKind::kOutage);
}

TEST_F(BoxRegistryTest, DownBoxWaitsWithDoublingBackoffAndOneProbe) {
  BoxRegistry registry = Make();
  EXPECT_FALSE(registry.DownUntil("russia-1").has_value());
  registry.ReportFailure("russia-1", Error::Outage("connection refused"));
  EXPECT_EQ(registry.DownUntil("russia-1"), now_ + 1s);
  EXPECT_FALSE(registry.DownUntil("finland-1").has_value());  // other boxes unaffected
  auto states = registry.States();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].name, "russia-1");
  EXPECT_FALSE(states[0].up);
  EXPECT_EQ(states[0].error, "connection refused");

  now_ += 1s;
  EXPECT_FALSE(registry.DownUntil("russia-1").has_value());  // this caller probes
  EXPECT_TRUE(registry.DownUntil("russia-1").has_value());   // the others keep waiting
  registry.ReportFailure("russia-1", Error::Outage("timeout"));
  EXPECT_EQ(registry.DownUntil("russia-1"), now_ + 2s);
  for (int i = 0; i < 5; ++i) registry.ReportFailure("russia-1", Error::Outage("timeout"));
  EXPECT_EQ(registry.DownUntil("russia-1"), now_ + 8s);  // capped

  registry.ReportSuccess("russia-1");
  EXPECT_FALSE(registry.DownUntil("russia-1").has_value());
  states = registry.States();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_TRUE(states[0].up);
  EXPECT_EQ(states[0].error, "");
}

TEST_F(BoxRegistryTest, AnAbandonedProbeLetsTheNextJobProbe) {
  BoxRegistry registry = Make();
  registry.ReportFailure("russia-1", Error::Outage("connection refused"));
  now_ += 1s;
  EXPECT_FALSE(registry.DownUntil("russia-1").has_value());  // probe chosen
  EXPECT_TRUE(registry.DownUntil("russia-1").has_value());   // others wait
  registry.AbandonProbe("russia-1");                         // it never asked the box
  EXPECT_FALSE(registry.DownUntil("russia-1").has_value());  // the next job probes
}

TEST_F(BoxRegistryTest, ConfigurationErrorRereadsTheEndpoint) {
  BoxRegistry registry = Make();
  ASSERT_TRUE(registry.ForBox("russia-1").ok());
  registry.ReportFailure("russia-1", Error::Configuration("403 InvalidAccessKeyId"));
  catalog_.endpoints["russia-1"] = "fixed:9000";
  auto store = registry.ForBox("russia-1");  // within the refresh period
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(EndpointOf(*store), "fixed:9000");
}

// A box that never answered (first contact still pending: it may hang)
// holds at most its first limit and half the job threads. While another
// box is in use, the jobs beyond them are deferred without waiting for its
// slots, so they cannot pile up on it; the other box is not affected.
TEST_F(BoxRegistryTest, JobsBeyondTheCapOfABoxThatDidNotAnswerAreDeferredWhileOthersWork) {
  BoxRegistry registry = Make(/*max_in_flight=*/2);
  auto other = registry.Admit("finland-1", {}, {});
  ASSERT_FALSE(other.defer_until.has_value());
  auto first = registry.Admit("russia-1", {}, {});
  auto second = registry.Admit("russia-1", {}, {});
  ASSERT_FALSE(first.defer_until.has_value());
  ASSERT_FALSE(second.defer_until.has_value());

  auto started = std::chrono::steady_clock::now();
  auto third = registry.Admit("russia-1", {}, {});
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s) << "waited for a silent box";
  ASSERT_TRUE(third.defer_until.has_value());
  EXPECT_GE(*third.defer_until, now_ + 1s);
  EXPECT_THAT(third.reason, HasSubstr("russia-1 has 2 jobs in flight and has not answered"));
  EXPECT_THAT(third.reason, HasSubstr("BOX_MAX_IN_FLIGHT"));
  EXPECT_FALSE(registry.Admit("finland-1", {}, {}).defer_until.has_value()) << "other boxes";

  first.slot.Reset();
  EXPECT_FALSE(registry.Admit("russia-1", {}, {}).defer_until.has_value()) << "a slot was freed";
}

// The first contact of the only box in use: nothing waits behind its jobs,
// so the one beyond its first limit waits for a slot instead of going
// round the queue (it is not known to hang: its oldest job started now).
TEST_F(BoxRegistryTest, AJobBeyondTheCapOfALoneBoxInItsFirstContactWaits) {
  BoxRegistry registry = Make(/*max_in_flight=*/2);
  ASSERT_TRUE(registry.ForBox("russia-1").ok());  // for States()
  auto first = registry.Admit("russia-1", {}, {});
  auto second = registry.Admit("russia-1", {}, {});
  std::optional<StoreRouter::TimePoint> deferred_to = now_;
  std::thread waiter([&] { deferred_to = registry.Admit("russia-1", {}, {}).defer_until; });
  ASSERT_TRUE([&] {
    for (int i = 0; i < 500; ++i) {
      for (const auto& box : registry.States()) {
        if (box.name == "russia-1" && box.waiting == 1) return true;
      }
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }()) << "the job beyond the cap did not wait";
  first.slot.Succeeded(1024);
  waiter.join();
  EXPECT_FALSE(deferred_to.has_value());
}

// The longer the box's oldest job has been in flight, the later the jobs
// beyond the cap come back (a hang costs fewer and fewer turns).
TEST_F(BoxRegistryTest, DeferralBeyondTheCapGrowsWithTheAgeOfTheOldestJob) {
  BoxRegistry registry = Make(/*max_in_flight=*/1);
  auto held = registry.Admit("russia-1", {}, {});
  ASSERT_FALSE(held.defer_until.has_value());
  now_ += 5s;
  auto deferred = registry.Admit("russia-1", {}, {});
  ASSERT_TRUE(deferred.defer_until.has_value());
  EXPECT_EQ(*deferred.defer_until, now_ + 5s);
  now_ += 60s;
  deferred = registry.Admit("russia-1", {}, {});
  ASSERT_TRUE(deferred.defer_until.has_value());
  EXPECT_EQ(*deferred.defer_until, now_ + 8s) << "at most max_backoff";
}

// A box that answers is busy, not hung: a job beyond its cap waits for the
// next free slot instead of going round the queue.
TEST_F(BoxRegistryTest, JobBeyondTheCapOfAnAnsweringBoxWaitsForASlot) {
  BoxRegistry registry = Make(/*max_in_flight=*/1);
  auto held = registry.Admit("russia-1", {}, {});
  ASSERT_FALSE(held.defer_until.has_value());
  registry.ReportSuccess("russia-1");

  std::atomic<bool> admitted{false};
  std::thread waiter([&] {
    auto admission = registry.Admit("russia-1", {}, {});
    admitted = !admission.defer_until.has_value();
  });
  held.slot.Reset();
  waiter.join();
  EXPECT_TRUE(admitted.load());
}

// A box marked down while jobs wait for its slots: they defer to its next
// check at once.
TEST_F(BoxRegistryTest, WaitingForASlotEndsWhenTheBoxIsMarkedDown) {
  BoxRegistry registry = Make(/*max_in_flight=*/1);
  auto held = registry.Admit("russia-1", {}, {});
  registry.ReportSuccess("russia-1");
  std::optional<StoreRouter::TimePoint> deferred_to;
  std::string reason;
  std::thread waiter([&] {
    auto admission = registry.Admit("russia-1", {}, {});
    deferred_to = admission.defer_until;
    reason = admission.reason;
  });
  registry.ReportFailure("russia-1", Error::Outage("timeout"));
  waiter.join();
  ASSERT_TRUE(deferred_to.has_value());
  // Either it saw the box down, or (if it had not started waiting yet) it
  // gave up on the slot: never admitted.
  EXPECT_THAT(reason, ::testing::AnyOf(HasSubstr("is down"), HasSubstr("jobs in flight")));
}

// The probe after a backoff needs a slot too: with every slot held by jobs
// still hanging on the box, nobody probes and the box stays down.
TEST_F(BoxRegistryTest, ADownBoxIsProbedOnlyThroughAFreeSlot) {
  BoxRegistry registry = Make(/*max_in_flight=*/1);
  auto hanging = registry.Admit("russia-1", {}, {});
  ASSERT_FALSE(hanging.defer_until.has_value());
  registry.ReportFailure("russia-1", Error::Outage("timeout"));
  now_ += 1s;
  auto down = registry.Admit("russia-1", {}, {});
  ASSERT_TRUE(down.defer_until.has_value());
  EXPECT_THAT(down.reason, HasSubstr("russia-1 is down"));
  hanging.slot.Reset();
  EXPECT_FALSE(registry.Admit("russia-1", {}, {}).defer_until.has_value()) << "the probe";
  EXPECT_TRUE(registry.Admit("russia-1", {}, {}).defer_until.has_value()) << "one probe only";
}

TEST_F(BoxRegistryTest, WithoutACapEveryJobIsAdmitted) {
  BoxRegistry registry = Make();
  std::vector<StoreRouter::Admission> admissions;
  for (int i = 0; i < 100; ++i) {
    admissions.push_back(registry.Admit("russia-1", {}, {}));
    ASSERT_FALSE(admissions.back().defer_until.has_value());
  }
}

TEST_F(BoxRegistryTest, APausedBoxsJobsAreDeferredWithItsReasonLongerAsThePauseLasts) {
  BoxRegistry registry = Make(/*max_in_flight=*/8);
  registry.SetPaused({{"russia-1", "disk swap"}});
  StoreRouter::Admission first = registry.Admit("russia-1", {}, {});
  ASSERT_TRUE(first.defer_until.has_value());
  EXPECT_EQ(*first.defer_until, now_ + 5s);
  EXPECT_EQ(first.reason, "Storage box russia-1 is paused: disk swap");
  EXPECT_FALSE(first.slot);
  // The other boxes flow.
  EXPECT_FALSE(registry.Admit(std::nullopt, {}, {}).defer_until.has_value());
  // A quarter of the pause so far, at most 30 s.
  now_ += 60s;
  registry.SetPaused({{"russia-1", "disk swap, then a rebuild"}});
  StoreRouter::Admission later = registry.Admit("russia-1", {}, {});
  EXPECT_EQ(*later.defer_until, now_ + 15s);
  EXPECT_THAT(later.reason, HasSubstr("then a rebuild"));
  now_ += 1h;
  EXPECT_EQ(*registry.Admit("russia-1", {}, {}).defer_until, now_ + 30s);
  // Resumed: admitted at once.
  registry.SetPaused({});
  StoreRouter::Admission resumed = registry.Admit("russia-1", {}, {});
  EXPECT_FALSE(resumed.defer_until.has_value());
  EXPECT_TRUE(resumed.slot);
}

// The process takes jobs only while the boxes in use can take them: their
// limits plus a spare (a quarter of them, at least 2) of jobs ready for the
// next free slots. Before any box is in use, one new box's first limit.
TEST_F(BoxRegistryTest, IntakeStopsAtTheLimitsInUsePlusTheSpare) {
  BoxRegistry registry = Make(/*max_in_flight=*/64, /*threads=*/64);
  std::vector<StoreRouter::Ticket> tickets;
  for (int i = 0; i < 6; ++i) {
    auto ticket = registry.AwaitIntake({}, 0ms);
    ASSERT_TRUE(ticket.has_value()) << i;
    tickets.push_back(std::move(*ticket));
  }
  EXPECT_FALSE(registry.AwaitIntake({}, 10ms).has_value()) << "4 (a first limit) + 2 spare";

  std::vector<StoreRouter::Admission> admitted;
  for (int i = 0; i < 4; ++i) {
    admitted.push_back(registry.Admit("russia-1", {}, std::move(tickets.back())));
    tickets.pop_back();
    ASSERT_FALSE(admitted.back().defer_until.has_value());
  }
  EXPECT_FALSE(registry.AwaitIntake({}, 10ms).has_value()) << "a ticket turned slot counts";
  admitted.back().slot.Reset();
  EXPECT_TRUE(registry.AwaitIntake({}, 0ms).has_value()) << "a freed slot is room";
}

// A lone box that answers and is at its limit: the jobs the process holds
// for it wait for its slots; none is deferred, and no more are taken.
TEST_F(BoxRegistryTest, ALoneBusyBoxDefersNothing) {
  BoxRegistry registry = Make(/*max_in_flight=*/64, /*threads=*/64);
  std::vector<StoreRouter::Admission> held;
  for (int i = 0; i < 4; ++i) {
    auto ticket = registry.AwaitIntake({}, 0ms);
    ASSERT_TRUE(ticket.has_value());
    held.push_back(registry.Admit("russia-1", {}, std::move(*ticket)));
    ASSERT_FALSE(held.back().defer_until.has_value());
  }
  registry.ReportSuccess("russia-1");
  std::vector<std::optional<StoreRouter::TimePoint>> deferred(2);
  std::vector<std::thread> waiters;
  for (int i = 0; i < 2; ++i) {
    auto ticket = registry.AwaitIntake({}, 0ms);
    ASSERT_TRUE(ticket.has_value()) << "the spare";
    waiters.emplace_back([&registry, &deferred, i, t = std::move(*ticket)]() mutable {
      deferred[i] = registry.Admit("russia-1", {}, std::move(t)).defer_until;
    });
  }
  EXPECT_FALSE(registry.AwaitIntake({}, 10ms).has_value()) << "nothing more to take";
  held[0].slot.Succeeded(1024);
  held[1].slot.Succeeded(1024);
  for (auto& waiter : waiters) waiter.join();
  EXPECT_FALSE(deferred[0].has_value());
  EXPECT_FALSE(deferred[1].has_value());
}

// Another box in use: a busy box whose spare waiters are there already
// defers the jobs beyond them (the others' jobs must not queue behind them).
TEST_F(BoxRegistryTest, ABusyBoxWithItsWaitersDefersTheRestWhileOthersFlow) {
  BoxRegistry registry = Make(/*max_in_flight=*/64, /*threads=*/64);
  ASSERT_TRUE(registry.ForBox("russia-1").ok());  // for States()
  std::vector<StoreRouter::Admission> held;
  for (int i = 0; i < 4; ++i) held.push_back(registry.Admit("russia-1", {}, {}));
  held.push_back(registry.Admit("finland-1", {}, {}));
  registry.ReportSuccess("russia-1");
  std::vector<std::thread> waiters;
  std::atomic<int> waiting_admitted{0};
  for (int i = 0; i < 2; ++i) {
    waiters.emplace_back([&] {
      if (!registry.Admit("russia-1", {}, {}).defer_until) ++waiting_admitted;
    });
  }
  ASSERT_TRUE([&] {
    for (int i = 0; i < 500; ++i) {
      for (const auto& box : registry.States()) {
        if (box.name == "russia-1" && box.waiting == 2) return true;
      }
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }()) << "the two waiters never waited";
  auto beyond = registry.Admit("russia-1", {}, {});
  ASSERT_TRUE(beyond.defer_until.has_value());
  EXPECT_GE(*beyond.defer_until, now_ + 1s);
  EXPECT_THAT(beyond.reason,
              HasSubstr("russia-1 has 4 jobs in flight (its limit 4) and 2 waiting"));
  EXPECT_FALSE(registry.Admit("finland-1", {}, {}).defer_until.has_value()) << "other boxes flow";
  held[0].slot.Reset();
  held[1].slot.Reset();
  for (auto& waiter : waiters) waiter.join();
  EXPECT_EQ(waiting_admitted.load(), 2);
}

// Every slot given back after a success is a latency sample: while the
// latency holds, the limit doubles per round (slow start), within the
// ceiling; an outage halves it. States() shows it.
TEST_F(BoxRegistryTest, TheLimitFollowsTheSlotsSamples) {
  BoxRegistry registry = Make(/*max_in_flight=*/12, /*threads=*/64);
  auto limit_of = [&registry] {
    for (const auto& box : registry.States()) {
      if (box.name == "russia-1") return box.limit;
    }
    return -1;
  };
  ASSERT_TRUE(registry.ForBox("russia-1").ok());
  EXPECT_EQ(limit_of(), 4);
  for (int round = 0; round < 3; ++round) {
    registry.ReportSuccess("russia-1");
    std::vector<StoreRouter::Admission> held;
    for (int i = 0; i < limit_of(); ++i) {
      held.push_back(registry.Admit("russia-1", {}, {}));
      ASSERT_FALSE(held.back().defer_until.has_value());
    }
    now_ += 50ms;
    for (auto& admission : held) admission.slot.Succeeded(16 * 1024);
  }
  EXPECT_EQ(limit_of(), 12) << "4, 8, then the ceiling";
  auto states = registry.States();
  EXPECT_NEAR(states[0].latency_seconds, 0.05, 1e-9);
  EXPECT_EQ(states[0].in_flight, 0);
  registry.ReportFailure("russia-1", Error::Outage("timeout"));
  EXPECT_EQ(limit_of(), 6);
}

// The time a job's thread spent opening connections while it held its slot
// (ConnectionSetupOnThisThread, added to by the S3 client) is not the box's
// latency: a sample is the slot's time less that set-up.
TEST_F(BoxRegistryTest, ConnectionSetUpIsNotCountedInALatencySample) {
  BoxRegistry registry = Make(/*max_in_flight=*/8);
  ASSERT_TRUE(registry.ForBox("russia-1").ok());
  auto admission = registry.Admit("russia-1", {}, {});
  ASSERT_FALSE(admission.defer_until.has_value());
  now_ += 450ms;  // a TCP connect and a TLS handshake 100 ms away, then the upload
  ConnectionSetupOnThisThread() += 300ms;
  admission.slot.Succeeded(16 * 1024);
  EXPECT_NEAR(registry.States()[0].latency_seconds, 0.15, 1e-9);

  // A slot given back by another thread counts whole.
  admission = registry.Admit("russia-1", {}, {});
  now_ += 150ms;
  std::thread([&] {
    ConnectionSetupOnThisThread() += 100ms;
    admission.slot.Succeeded(16 * 1024);
  }).join();
  EXPECT_NEAR(registry.States()[0].latency_seconds, 0.15, 1e-9);
}

}  // namespace
}  // namespace media_sync::worker
