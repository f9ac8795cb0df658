// `media-sync failed list|show|requeue|purge` against a failed queue of known
// entries (LPUSHed as the worker writes them): the right entries move, the
// others stay, a requeued job is synced with a fresh retry budget, and
// concurrent changes never duplicate or lose an entry.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "core/error_texts.h"
#include "core/hash.h"
#include "core/job.h"
#include "support/cli_runner.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// A job payload for a file that need not exist.
std::string FakeJob(const std::string& name, const std::optional<std::string>& box, uint64_t size) {
  std::string sha = Sha256Hex(name);
  std::string key = ContentKey(sha, "jpg");
  return MakeJobPayload(
      NewJob{sha, key, "/buffer/" + key, box, size, std::chrono::system_clock::now()});
}

std::string Entry(const std::string& payload, const std::string& error, int attempts) {
  return FailedEntry(payload, error, attempts, std::chrono::system_clock::now());
}

class FailedCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }

  // LPUSHes entries in order: the last one is the newest (index 0).
  void Park(const std::vector<std::string>& entries) {
    for (const auto& entry : entries) {
      stack_.RedisCli("LPUSH media:sync:failed " + ShellQuote(entry));
    }
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
  std::vector<std::string> Failed() const { return List("media:sync:failed"); }
  std::vector<std::string> Pending() const { return List("media:sync:pending"); }

  // Four entries, oldest first: a garbage payload, then jobs on box-a,
  // box-b, box-a. As `failed list` numbers them: a2 0, b1 1, a1 2, raw 3.
  void ParkFour() {
    raw_ = Entry("{not json", "Invalid job: payload is not valid JSON", 1);
    a1_ = Entry(FakeJob("a1", "box-a", 2048), "Size mismatch: expected 2048, got 10", 4);
    b1_ = Entry(FakeJob("b1", "box-b", 4096), std::string(kMissingEverywhere), 4);
    a2_ = Entry(FakeJob("a2", "box-a", 100),
                "Storage box box-a refused the upload: AccessDenied " + std::string(300, 'x'), 4);
    Park({raw_, a1_, b1_, a2_});
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
  std::string raw_, a1_, b1_, a2_;
};

// The data lines of `failed list` (after the header), up to the summary.
std::vector<std::string> TableRows(const std::string& out) {
  std::vector<std::string> rows;
  std::istringstream lines(out);
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    if (line.find(" shown, newest first") != std::string::npos) break;
    rows.push_back(line);
  }
  return rows;
}

TEST_F(FailedCommandTest, ListIsATableNewestFirstWithIndexesAndFilters) {
  ParkFour();
  CliOutcome all = RunCli(stack_, "failed list");
  ASSERT_EQ(all.code, 0) << all.all();
  EXPECT_THAT(all.out, HasSubstr("FAILED_AT"));
  EXPECT_THAT(all.out, HasSubstr("ATTEMPTS"));
  auto rows = TableRows(all.out);
  ASSERT_EQ(rows.size(), 4u) << all.out;
  std::string a2_key = Json::parse(a2_)["s3_key"];
  std::string a1_key = Json::parse(a1_)["s3_key"];
  EXPECT_THAT(rows[0], ::testing::StartsWith("0  "));
  EXPECT_THAT(rows[0], HasSubstr(a2_key));
  EXPECT_THAT(rows[0], HasSubstr("box-a"));
  EXPECT_THAT(rows[0], HasSubstr("100 B"));
  // The long error is shortened to fit; --json keeps it whole.
  EXPECT_THAT(rows[0], HasSubstr("..."));
  EXPECT_THAT(rows[0], Not(HasSubstr(std::string(300, 'x'))));
  EXPECT_THAT(rows[1], HasSubstr("box-b"));
  EXPECT_THAT(rows[1], HasSubstr("4.1 KB"));
  EXPECT_THAT(rows[2], HasSubstr(a1_key));
  EXPECT_THAT(rows[2], HasSubstr("Size mismatch: expected 2048, got 10"));
  EXPECT_THAT(rows[3], ::testing::StartsWith("3  "));
  EXPECT_THAT(rows[3], HasSubstr("not a job: {not json"));
  EXPECT_THAT(rows[3], HasSubstr("payload is not valid JSON"));
  EXPECT_THAT(all.out, HasSubstr("4 shown, newest first, of 4 failed entries"));

  EXPECT_EQ(TableRows(RunCli(stack_, "failed list --limit 2").out).size(), 2u);

  auto grep = TableRows(RunCli(stack_, "failed list --grep 'SIZE MISMATCH'").out);
  ASSERT_EQ(grep.size(), 1u);
  EXPECT_THAT(grep[0], ::testing::StartsWith("2  "));  // its index in the whole queue

  auto by_box = TableRows(RunCli(stack_, "failed list --box box-a").out);
  ASSERT_EQ(by_box.size(), 2u);
  EXPECT_THAT(by_box[0], HasSubstr(a2_key));
  EXPECT_THAT(by_box[1], HasSubstr(a1_key));

  std::string b1_sha = Json::parse(b1_)["sha256"];
  auto by_sha = TableRows(RunCli(stack_, "failed list --grep " + b1_sha.substr(10, 20)).out);
  ASSERT_EQ(by_sha.size(), 1u);
  EXPECT_THAT(by_sha[0], ::testing::StartsWith("1  "));

  auto none = RunCli(stack_, "failed list --grep nothing-like-this --box box-a");
  EXPECT_EQ(none.code, 0);
  EXPECT_THAT(none.out, HasSubstr("0 shown, newest first, of 4 failed entries (0 matching"));

  CliOutcome json = RunCli(stack_, "failed list --json");
  ASSERT_EQ(json.code, 0) << json.all();
  Json array = Json::parse(json.out);
  ASSERT_EQ(array.size(), 4u);
  const std::vector<std::string> newest_first = {a2_, b1_, a1_, raw_};
  for (size_t i = 0; i < array.size(); ++i) {
    EXPECT_EQ(array[i]["index"], i);
    Json entry = array[i];
    entry.erase("index");
    EXPECT_EQ(entry, Json::parse(newest_first[i]));
  }
}

// A failed entry is hostile input: control characters in its box, key or
// error (a terminal escape, a line break, C1's CSI) are printed as spaces,
// so the table keeps one line per entry and the terminal obeys none of them.
TEST_F(FailedCommandTest, ListPrintsNoControlCharacterOfAnEntry) {
  Json job = Json::parse(FakeJob("hostile",
                                 "\x1b]0;owned\x07"
                                 "box\x1b[2J",
                                 100));
  job["s3_key"] =
      "media/\x1b[31mred\nforged\xc2\x9b"
      "2J";
  Park({Entry(job.dump(), "Invalid job: \x1b[5mblink\r\nsecond line", 1)});
  CliOutcome list = RunCli(stack_, "failed list");
  ASSERT_EQ(list.code, 0) << list.all();
  for (char c : list.out) {
    auto byte = static_cast<unsigned char>(c);
    EXPECT_TRUE(byte == '\n' || (byte >= 0x20 && byte != 0x7f)) << "byte " << int{byte};
  }
  EXPECT_EQ(list.out.find("\xc2\x9b"), std::string::npos);
  auto rows = TableRows(list.out);
  ASSERT_EQ(rows.size(), 1u) << list.out;
  EXPECT_THAT(rows[0], HasSubstr(" ]0;owned box [2J"));
  EXPECT_THAT(rows[0], HasSubstr("media/ [31mred forged 2J"));
}

TEST_F(FailedCommandTest, ShowPrintsOneWholeEntry) {
  ParkFour();
  CliOutcome show = RunCli(stack_, "failed show 1");
  ASSERT_EQ(show.code, 0) << show.all();
  EXPECT_EQ(Json::parse(show.out), Json::parse(b1_));
  EXPECT_THAT(show.out, HasSubstr("\n  \"error\": "));  // pretty-printed

  CliOutcome missing = RunCli(stack_, "failed show 9");
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no entry at index 9 (the failed queue holds 4)"));
  EXPECT_EQ(RunCli(stack_, "failed show -1").code, 2);
}

TEST_F(FailedCommandTest, RequeueByIndexMovesExactlyThatEntry) {
  ParkFour();
  CliOutcome requeue = RunCli(stack_, "failed requeue 2");
  ASSERT_EQ(requeue.code, 0) << requeue.all();
  EXPECT_THAT(requeue.out, HasSubstr("requeued 1 failed job"));
  EXPECT_THAT(requeue.out, HasSubstr(Json::parse(a1_)["s3_key"].get<std::string>()));
  // Whole, failure fields included: the worker gives it a fresh budget.
  EXPECT_THAT(Pending(), ElementsAre(a1_));
  EXPECT_THAT(Failed(), ElementsAre(a2_, b1_, raw_));

  CliOutcome past_end = RunCli(stack_, "failed requeue 3");
  EXPECT_EQ(past_end.code, 1);
  EXPECT_THAT(past_end.err, HasSubstr("no entry at index 3 (the failed queue holds 3)"));
  EXPECT_EQ(Failed().size(), 3u);
}

TEST_F(FailedCommandTest, RequeueByFilterMovesTheMatchingEntriesOnly) {
  ParkFour();
  CliOutcome by_box = RunCli(stack_, "failed requeue --box box-a");
  ASSERT_EQ(by_box.code, 0) << by_box.all();
  EXPECT_THAT(by_box.out, HasSubstr("requeued 2 failed jobs"));
  // Oldest first onto pending, so they are served in the order they failed.
  EXPECT_THAT(Pending(), ElementsAre(a2_, a1_));
  EXPECT_THAT(Failed(), ElementsAre(b1_, raw_));

  CliOutcome grep = RunCli(stack_, "failed requeue --grep 'MISSING FROM BOTH'");
  ASSERT_EQ(grep.code, 0) << grep.all();
  EXPECT_THAT(grep.out, HasSubstr("requeued 1 failed jobs"));
  EXPECT_THAT(Failed(), ElementsAre(raw_));

  CliOutcome nothing = RunCli(stack_, "failed requeue --grep 'no such error'");
  EXPECT_EQ(nothing.code, 0);
  EXPECT_THAT(nothing.out, HasSubstr("requeued 0 failed jobs"));
  EXPECT_THAT(Failed(), ElementsAre(raw_));
}

TEST_F(FailedCommandTest, RequeueCountAndAllFollowTheRunbook) {
  ParkFour();
  CliOutcome one = RunCli(stack_, "failed requeue --count 1");
  ASSERT_EQ(one.code, 0) << one.all();
  EXPECT_THAT(Pending(), ElementsAre(raw_));  // the oldest, as RPOPLPUSH takes it
  CliOutcome all = RunCli(stack_, "failed requeue --all");
  ASSERT_EQ(all.code, 0) << all.all();
  EXPECT_THAT(all.out, HasSubstr("requeued 3 failed jobs"));
  EXPECT_TRUE(Failed().empty());
  EXPECT_EQ(Pending().size(), 4u);

  // Choices that contradict each other are usage errors.
  EXPECT_EQ(RunCli(stack_, "failed requeue 0 --all").code, 2);
  EXPECT_EQ(RunCli(stack_, "failed requeue --all --count 3").code, 2);
  EXPECT_EQ(RunCli(stack_, "failed requeue 1 --grep x").code, 2);
}

TEST_F(FailedCommandTest, RequeuedJobsAreSyncedWithAFreshRetryBudget) {
  // Both jobs used up their retries (retry_count 3 = MAX_RETRIES) before
  // they were parked; a third stays parked.
  Json present = media_.Make(3000, "box-a", 21);
  Json absent = media_.Make(5000, "box-b", 22);
  Json other = media_.Make(700, "box-a", 23);
  std::string held = stack_.StateDir() + "/held-back.jpg";
  fs::rename(absent["local_path"].get<std::string>(), held);
  std::string present_entry = Entry(WithRetryCount(present.dump(), 3), "SHA-256 mismatch", 4);
  std::string absent_entry =
      Entry(WithRetryCount(absent.dump(), 3), std::string(kMissingEverywhere), 4);
  std::string other_entry = Entry(WithRetryCount(other.dump(), 3), "Unrelated", 4);
  Park({present_entry, other_entry, absent_entry});

  ASSERT_EQ(RunCli(stack_, "failed requeue --grep " + present["sha256"].get<std::string>()).code,
            0);
  ASSERT_EQ(RunCli(stack_, "failed requeue --box box-b").code, 0);
  EXPECT_THAT(Failed(), ElementsAre(other_entry));

  WorkerProcess worker(stack_, {{"MAX_RETRIES", "3"}, {"RETRY_DELAY_SECONDS", "1"}},
                       {"run", "--drain"});
  // The job whose file is missing fails once more and, with a fresh budget,
  // waits for retry 1 instead of going back to the failed queue.
  Json delayed;
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::string raw = Trim(stack_.RedisCli("--raw ZRANGE media:sync:delayed 0 0"));
        if (raw.empty()) return false;
        delayed = Json::parse(raw);
        return true;
      },
      30s))
      << worker.Log();
  EXPECT_EQ(delayed["sha256"], absent["sha256"]);
  EXPECT_EQ(delayed["retry_count"], 1);
  EXPECT_FALSE(delayed.contains("failed_at"));
  fs::rename(held, absent["local_path"].get<std::string>());

  ASSERT_EQ(worker.WaitExit(120s), 0) << worker.Log();
  EXPECT_EQ(media_.SyncedRows("box-a"), 1);
  EXPECT_EQ(media_.SyncedRows("box-b"), 1);
  EXPECT_TRUE(media_.ObjectStored(present));
  EXPECT_TRUE(media_.ObjectStored(absent));
  EXPECT_THAT(Failed(), ElementsAre(other_entry));
}

TEST_F(FailedCommandTest, PurgeOffATerminalRefusesWithoutYes) {
  ParkFour();
  CliOutcome all = RunCli(stack_, "failed purge --all");
  EXPECT_EQ(all.code, 2);
  EXPECT_THAT(all.err, HasSubstr("would delete 4 failed entries"));
  EXPECT_THAT(all.err, HasSubstr("pass --yes"));
  CliOutcome filtered = RunCli(stack_, "failed purge --box box-a");
  EXPECT_EQ(filtered.code, 2);
  EXPECT_THAT(filtered.err, HasSubstr("would delete 2 failed entries matching --box 'box-a'"));
  CliOutcome unsaid = RunCli(stack_, "failed purge --yes");
  EXPECT_EQ(unsaid.code, 2);
  EXPECT_THAT(unsaid.err, HasSubstr("--all, or a filter"));
  EXPECT_EQ(Failed().size(), 4u);
}

TEST_F(FailedCommandTest, PurgeOnATerminalAsksFirst) {
  ParkFour();
  CliOutcome declined = RunCliOnTerminal(stack_, "failed purge --box box-a", "n\n");
  EXPECT_EQ(declined.code, 1) << declined.out;
  EXPECT_THAT(declined.out, HasSubstr("Delete 2 failed entries matching --box 'box-a'?"));
  EXPECT_THAT(declined.out, HasSubstr("nothing deleted"));
  EXPECT_EQ(Failed().size(), 4u);

  CliOutcome confirmed = RunCliOnTerminal(stack_, "failed purge --box box-a", "y\n");
  EXPECT_EQ(confirmed.code, 0) << confirmed.out;
  EXPECT_THAT(confirmed.out, HasSubstr("deleted 2 failed entries"));
  EXPECT_THAT(Failed(), ElementsAre(b1_, raw_));
}

TEST_F(FailedCommandTest, PurgeWithYesDeletesTheChosenEntriesOnly) {
  ParkFour();
  CliOutcome by_box = RunCli(stack_, "failed purge --box box-a --yes");
  ASSERT_EQ(by_box.code, 0) << by_box.all();
  EXPECT_THAT(by_box.out, HasSubstr("deleted 2 failed entries"));
  EXPECT_THAT(Failed(), ElementsAre(b1_, raw_));
  CliOutcome grep = RunCli(stack_, "failed purge --grep '{NOT JSON' --yes");
  ASSERT_EQ(grep.code, 0) << grep.all();
  EXPECT_THAT(grep.out, HasSubstr("deleted 1 failed entries"));
  EXPECT_THAT(Failed(), ElementsAre(b1_));
  CliOutcome all = RunCli(stack_, "failed purge --all --yes");
  ASSERT_EQ(all.code, 0) << all.all();
  EXPECT_THAT(all.out, HasSubstr("deleted 1 failed entries"));
  EXPECT_TRUE(Failed().empty());
  EXPECT_TRUE(Pending().empty());
}

TEST_F(FailedCommandTest, ConcurrentRequeuesAndTheRunbookNeitherDuplicateNorLose) {
  std::vector<std::string> flaky;
  std::vector<std::string> others;
  std::vector<std::string> entries;
  for (int i = 0; i < 300; ++i) {
    flaky.push_back(Entry(FakeJob("flaky-" + std::to_string(i), "box-a", 10),
                          "box flaky #" + std::to_string(i), 2));
    entries.push_back(flaky.back());
    if (i % 3 == 0) {
      others.push_back(Entry(FakeJob("other-" + std::to_string(i), "box-b", 10),
                             "other #" + std::to_string(i), 2));
      entries.push_back(others.back());
    }
  }
  for (size_t at = 0; at < entries.size(); at += 50) {
    std::string command = "LPUSH media:sync:failed";
    for (size_t i = at; i < std::min(entries.size(), at + 50); ++i) {
      command += " " + ShellQuote(entries[i]);
    }
    stack_.RedisCli(command);
  }

  // Two operators requeue the same filter while the runbook moves entries.
  CliOutcome first, second;
  std::thread one([&] { first = RunCli(stack_, "failed requeue --grep flaky"); });
  std::thread two([&] { second = RunCli(stack_, "failed requeue --grep flaky"); });
  for (int i = 0; i < 50; ++i) stack_.RedisCli("RPOPLPUSH media:sync:failed media:sync:pending");
  one.join();
  two.join();
  ASSERT_EQ(first.code, 0) << first.all();
  ASSERT_EQ(second.code, 0) << second.all();

  std::vector<std::string> pending = Pending();
  std::vector<std::string> failed = Failed();
  std::multiset<std::string> seen(pending.begin(), pending.end());
  seen.insert(failed.begin(), failed.end());
  EXPECT_EQ(seen.size(), entries.size());
  for (const auto& entry : entries) EXPECT_EQ(seen.count(entry), 1u) << entry;
  std::set<std::string> in_pending(pending.begin(), pending.end());
  for (const auto& entry : flaky) EXPECT_EQ(in_pending.count(entry), 1u) << entry;
  // The runbook's 50 RPOPLPUSHes each found an entry: every flaky one is
  // pending, plus the others the runbook moved.
  size_t others_moved = 0;
  for (const auto& entry : others) others_moved += in_pending.count(entry);
  EXPECT_EQ(pending.size(), flaky.size() + others_moved);
  EXPECT_EQ(failed.size(), others.size() - others_moved);

  // What the two commands report adds up to what they moved.
  std::regex requeued("requeued (\\d+) failed jobs");
  std::smatch a, b;
  ASSERT_TRUE(std::regex_search(first.out, a, requeued)) << first.out;
  ASSERT_TRUE(std::regex_search(second.out, b, requeued)) << second.out;
  size_t flaky_by_runbook = 50 - others_moved;
  EXPECT_EQ(std::stoul(a[1]) + std::stoul(b[1]) + flaky_by_runbook, 300u);
}

TEST_F(FailedCommandTest, EverySubcommandHelpHasAnExample) {
  for (const char* command :
       {"failed", "failed list", "failed show", "failed requeue", "failed purge"}) {
    CliOutcome help = RunCli(stack_, std::string(command) + " --help");
    EXPECT_EQ(help.code, 0) << command;
    EXPECT_THAT(help.out, HasSubstr("Example")) << command;
    EXPECT_THAT(help.out, HasSubstr("media-sync failed")) << command;
  }
}

}  // namespace
}  // namespace media_sync::testing
