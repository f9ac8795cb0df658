// The web console in a real browser. This test makes a known state with the
// real parts (a worker syncs files and parks two failures, one of them a job
// whose key holds <script> and <img onerror>; jobs wait in pending; a worker
// holds jobs with a multipart upload under way), starts `media-sync web`,
// and runs tests/browser/console_test.js, which drives Debian's chromium
// (headless, one launch) through every page with puppeteer-core. Then it
// checks in Redis what the browser did: the failure it requeued left the
// failed queue for pending, and nothing else moved.
//
// Why a GoogleTest that runs a Node script: the stack, the worker and the
// media come from the C++ harness every integration test uses
// (tests/support/), and Redis is read here afterwards; the script only
// drives the browser, where puppeteer lives. With MEDIA_SYNC_SCREENSHOTS set
// to a directory, the script writes a PNG of each page there (the README's
// come from `MEDIA_SYNC_SCREENSHOTS=$PWD/docs/images`).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/hash.h"
#include "core/job.h"
#include "support/web_console.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

const std::string kWriteToken = "browser-write-token-0123456789";

class WebBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }
  std::vector<std::string> List(const std::string& key) const {
    std::vector<std::string> items;
    std::istringstream lines(stack_.RedisCli("--raw LRANGE " + key + " 0 -1"));
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty()) items.push_back(line);
    }
    return items;
  }
  static bool AnyHolds(const std::vector<std::string>& entries, const std::string& text) {
    return std::any_of(entries.begin(), entries.end(), [&](const std::string& entry) {
      return entry.find(text) != std::string::npos;
    });
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
};

TEST_F(WebBrowserTest, AnOperatorTriagesFromTheConsole) {
  ASSERT_EQ(access("/usr/bin/chromium", X_OK), 0) << "chromium is missing: run make deps";
  ASSERT_TRUE(
      std::filesystem::exists(SourcePath(".deps/browser/node_modules/puppeteer-core/package.json")))
      << "puppeteer-core is missing: run make deps";

  // A worker syncs five files and parks two failures at once (no retries).
  std::vector<Json> jobs;
  for (int i = 0; i < 5; ++i)
    jobs.push_back(media_.Make(20000 + i, i < 3 ? "box-a" : "box-b", 900 + i));
  Json missing = media_.Make(321, "box-a", 990);
  std::filesystem::remove(missing["local_path"].get<std::string>());
  jobs.push_back(missing);
  const std::string hostile_sha = Sha256Hex("hostile");
  Json hostile{{"sha256", hostile_sha},
               {"s3_key", "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"},
               {"local_path", "hostile.jpg"},
               {"storage_box_id", "box-a"},
               {"file_size", 1}};
  jobs.push_back(hostile);
  media_.PushAll(jobs);

  WebConsoleProcess web(stack_, {{"WEB_TOKEN", kWriteToken}});
  {
    WorkerProcess worker(stack_, {{"MAX_RETRIES", "0"}, {"WORKER_ID", "browser-test-worker"}});
    // Until its Monitor published the minute's syncs and faults.
    Json activity;
    ASSERT_TRUE(WaitUntil(
        [&] {
          activity = web.Get("/api/activity?minutes=10").json();
          return activity["totals"]["files"] == 5 && activity["totals"]["failed"] == 2;
        },
        60s))
        << activity.dump() << "\n"
        << worker.Log();
    worker.Signal(SIGTERM);
    ASSERT_EQ(worker.WaitExit(30s), 0) << worker.Log();
  }
  ASSERT_EQ(List("media:sync:failed").size(), 2u);

  // Jobs waiting for a worker, and one holding two jobs, a large one half
  // uploaded (its lease, processing list and upload journal as a worker
  // writes them).
  for (int i = 0; i < 3; ++i) {
    std::string sha = Sha256Hex("waiting" + std::to_string(i));
    std::string key = ContentKey(sha, "mp4");
    media_.Push(Json::parse(
        MakeJobPayload(NewJob{sha, key, stack_.BufferDir() + "/" + key, "box-b", uint64_t{5} << 20,
                              std::chrono::system_clock::now() - 95s})));
  }
  const std::string worker = "ingest-7-4f2a91c3";
  stack_.RedisCli("SADD media:sync:workers " + worker);
  stack_.RedisCli("SET media:sync:worker:" + worker + " " +
                  ShellQuote(R"({"host":"ingest-7","pid":4711,"started_at":")" +
                             IsoTimestamp(std::chrono::system_clock::now() - 3600s) + "\"}") +
                  " EX 600");
  for (const char* name : {"held-small", "held-large"}) {
    std::string sha = Sha256Hex(name);
    bool large = std::string(name) == "held-large";
    std::string key = ContentKey(sha, large ? "mkv" : "jpg");
    stack_.RedisCli("LPUSH media:sync:processing:" + worker + " " +
                    ShellQuote(MakeJobPayload(NewJob{sha, key, stack_.BufferDir() + "/" + key,
                                                     "box-a", large ? uint64_t{600} << 20 : 48213,
                                                     std::chrono::system_clock::now() - 20s})));
    if (large) {
      std::string parts;
      for (int part = 1; part <= 40; ++part) parts += " " + std::to_string(part) + " '8388608 e'";
      stack_.RedisCli("HSET " +
                      ShellQuote("media:sync:upload:" + stack_.Get("MINIO_ENDPOINT") + "/" +
                                 stack_.Get("MINIO_BUCKET") + "/" + key) +
                      " upload_id u part_size 8388608" + parts);
    }
  }

  const std::string target_sha = missing["sha256"];
  Json expect{{"pending", 3},
              {"failed", 2},
              {"processing", 2},
              {"synced_files", 5},
              {"target_sha256", target_sha},
              {"hostile_sha256", hostile_sha},
              {"synced_sha256", jobs[3]["sha256"]},
              {"synced_box", "box-b"},
              {"worker", worker}};
  std::string env = "CONSOLE_URL=" + ShellQuote("http://127.0.0.1:" + std::to_string(web.port())) +
                    " WEB_TOKEN=" + ShellQuote(kWriteToken) +
                    " EXPECT=" + ShellQuote(expect.dump());
  if (const char* dir = std::getenv("MEDIA_SYNC_SCREENSHOTS"); dir != nullptr && *dir != '\0') {
    env += " SCREENSHOT_DIR=" + ShellQuote(dir);
  }
  std::string output;
  auto started = std::chrono::steady_clock::now();
  int code = RunStatus(
      env + " node " + ShellQuote(SourcePath("tests/browser/console_test.js")) + " 2>&1", &output);
  Measure("browser_run_ms", Millis(std::chrono::steady_clock::now() - started), "ms");
  std::cout << output;
  ASSERT_EQ(code, 0) << output << "\nconsole log:\n" << web.process().Log();
  EXPECT_THAT(output, HasSubstr("ok - a cross-site form post is refused"));

  // What the browser did, as Redis holds it: the failure it requeued left
  // the failed queue for pending; the hostile entry stayed; nothing was
  // purged by the forged posts.
  std::vector<std::string> failed = List("media:sync:failed");
  std::vector<std::string> pending = List("media:sync:pending");
  EXPECT_EQ(failed.size(), 1u);
  EXPECT_FALSE(AnyHolds(failed, target_sha));
  EXPECT_TRUE(AnyHolds(failed, hostile_sha));
  EXPECT_EQ(pending.size(), 4u);
  EXPECT_TRUE(AnyHolds(pending, target_sha));
  EXPECT_THAT(web.process().Log(), HasSubstr("web: requeued 1 of 1 failed entries"));
  // The box paused from the page was resumed from it.
  EXPECT_THAT(web.process().Log(), HasSubstr("web: paused box box-b"));
  EXPECT_THAT(web.process().Log(), HasSubstr("web: resumed box box-b (was paused)"));
  EXPECT_EQ(Trim(stack_.RedisCli("HLEN media:sync:paused")), "0");
}

}  // namespace
}  // namespace media_sync::testing
