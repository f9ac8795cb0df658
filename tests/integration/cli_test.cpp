// The command line as an operator meets it: help, exit codes, configuration
// errors, and the queue commands against the real stack.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

struct Outcome {
  int code;
  std::string output;
};

Outcome Cli(const std::string& args, const std::string& env = "") {
  std::string out;
  int code = RunStatus(env + " " + MediaSyncBinary() + " " + args + " 2>&1", &out);
  return {code, out};
}

TEST(CliTest, HelpListsEverySubcommand) {
  Outcome help = Cli("--help");
  EXPECT_EQ(help.code, 0);
  for (const char* command : {"run", "status", "enqueue", "reconcile", "failed", "web", "config"}) {
    EXPECT_THAT(help.output, HasSubstr(command));
  }
  EXPECT_EQ(Cli("--version").output, std::string("media-sync ") + MEDIA_SYNC_VERSION + "\n");
}

TEST(CliTest, EverySubcommandHasHelp) {
  const std::map<std::string, std::string> expected = {{"run", "--drain"},
                                                       {"status", "--json"},
                                                       {"enqueue", "--jobs"},
                                                       {"reconcile", "--older-than"},
                                                       {"failed", "requeue"},
                                                       {"failed list", "--limit"},
                                                       {"failed requeue", "--count"},
                                                       {"web", "WEB_TOKEN"},
                                                       {"config", "secrets masked"}};
  for (const auto& [command, text] : expected) {
    Outcome help = Cli(command + " --help");
    EXPECT_EQ(help.code, 0) << command;
    EXPECT_THAT(help.output, HasSubstr(text)) << command;
  }
}

TEST(CliTest, UsageErrorsExitWith2) {
  EXPECT_EQ(Cli("").code, 2);
  EXPECT_EQ(Cli("frobnicate").code, 2);
  EXPECT_EQ(Cli("run --concurrency 0").code, 2);
  EXPECT_EQ(Cli("failed").code, 2);
}

struct BadSetting {
  std::string name;     // the test's name
  std::string command;  // the subcommand run
  std::string env;      // the setting, as VAR=value
  std::string named;    // what the message names
};

// Shown by its name in test output.
void PrintTo(const BadSetting& value, std::ostream* out) { *out << value.name; }

class CliBadSettingTest : public ::testing::TestWithParam<BadSetting> {};

TEST_P(CliBadSettingTest, NamesTheVariableAndExitsWith2) {
  Outcome bad = Cli(GetParam().command, GetParam().env);
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr(GetParam().named));
}

INSTANTIATE_TEST_SUITE_P(
    BadConfiguration, CliBadSettingTest,
    ::testing::Values(
        BadSetting{"NotABoolean", "config", "MINIO_SECURE=maybe", "MINIO_SECURE='maybe'"},
        BadSetting{"NegativeCount", "config", "SYNC_CONCURRENCY=-4", "SYNC_CONCURRENCY"},
        BadSetting{"EmptyDatabaseUrl", "run", "DATABASE_URL=", "DATABASE_URL"}),
    [](const ::testing::TestParamInfo<BadSetting>& info) { return info.param.name; });

TEST(CliTest, ConfigPrintsEffectiveSettingsWithSecretsMasked) {
  Outcome config = Cli("config",
                       "MINIO_SECRET_KEY=topsecret DATABASE_URL=postgresql://u:dbpass@h/db "
                       "REDIS_URL=redis://:redispass@h:6379/0 SYNC_CONCURRENCY=7");
  EXPECT_EQ(config.code, 0);
  EXPECT_THAT(config.output, HasSubstr("SYNC_CONCURRENCY"));
  EXPECT_THAT(config.output, HasSubstr("7"));
  EXPECT_THAT(config.output, Not(HasSubstr("topsecret")));
  EXPECT_THAT(config.output, Not(HasSubstr("dbpass")));
  EXPECT_THAT(config.output, Not(HasSubstr("redispass")));
}

class CliStackTest : public ::testing::Test {
 protected:
  void SetUp() override { stack_.Reset(); }
  std::string Env() const {
    std::string env;
    for (const auto& [key, value] : stack_.Env()) env += key + "='" + value + "' ";
    return env + "METRICS_ADDRESS= ";
  }
  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
};

TEST_F(CliStackTest, EnqueuePushesTheJobOfAFile) {
  media_.AddTwoBoxes();
  Json job = media_.Make(1234, "box-a", 3);
  Outcome enqueue = Cli("enqueue --box box-a " + job["local_path"].get<std::string>(), Env());
  EXPECT_EQ(enqueue.code, 0) << enqueue.output;
  EXPECT_EQ(media_.Len("media:sync:pending"), 1);
  Json pushed = Json::parse(stack_.RedisCli("--raw LINDEX media:sync:pending 0"));
  EXPECT_EQ(pushed["sha256"], job["sha256"]);
  EXPECT_EQ(pushed["s3_key"], job["s3_key"]);
  EXPECT_EQ(pushed["file_size"], 1234);
}

// Invalid JSON lines are refused before anything is pushed.
TEST_F(CliStackTest, EnqueueRefusesInvalidJobLinesBeforePushingAny) {
  std::string bad_file = stack_.StateDir() + "/bad-jobs.jsonl";
  std::ofstream(bad_file) << "{\"sha256\": 1}\n";
  Outcome bad_lines = Cli("enqueue --jobs " + bad_file, Env());
  EXPECT_EQ(bad_lines.code, 1);
  EXPECT_THAT(bad_lines.output, HasSubstr("line 1"));
  EXPECT_EQ(media_.Len("media:sync:pending"), 0);
}

TEST_F(CliStackTest, StatusCountsTheQueuesAndTheUnsyncedRows) {
  media_.AddTwoBoxes();
  media_.Push(media_.Make(1234, "box-a", 3));
  Outcome status = Cli("status --json", Env());
  ASSERT_EQ(status.code, 0) << status.output;
  Json counts = Json::parse(status.output);
  EXPECT_EQ(counts["queues"]["pending"], 1);
  EXPECT_EQ(counts["queues"]["failed"], 0);
  EXPECT_EQ(counts["unsynced_rows"], 1);
}

// reconcile leaves a row whose job is queued alone, and re-enqueues it
// with the buffer layout's local_path once Redis lost the job.
TEST_F(CliStackTest, ReconcileRequeuesOnlyAJobRedisLost) {
  media_.AddTwoBoxes();
  Json job = media_.Make(1234, "box-a", 3);
  media_.Push(job);
  Outcome queued = Cli("reconcile --older-than 0", Env());
  EXPECT_EQ(queued.code, 0) << queued.output;
  EXPECT_EQ(media_.Len("media:sync:pending"), 1);
  stack_.RedisCli("DEL media:sync:pending");
  Outcome reconcile = Cli("reconcile --older-than 0", Env());
  EXPECT_EQ(reconcile.code, 0) << reconcile.output;
  EXPECT_EQ(media_.Len("media:sync:pending"), 1);
  Json reconciled = Json::parse(stack_.RedisCli("--raw LINDEX media:sync:pending 0"));
  EXPECT_EQ(reconciled["sha256"], job["sha256"]);
  EXPECT_EQ(reconciled["local_path"], job["local_path"]);
  EXPECT_EQ(reconciled["storage_box_id"], "box-a");
}

TEST_F(CliStackTest, FailedListShowsAnEntryAndRequeueMovesItBack) {
  stack_.RedisCli(
      "LPUSH media:sync:failed "
      "'{\"raw\":\"x\",\"error\":\"e\",\"failed_at\":\"t\",\"attempts\":1}'");
  Outcome list = Cli("failed list --json", Env());
  EXPECT_EQ(list.code, 0);
  EXPECT_THAT(list.output, HasSubstr("\"error\":\"e\""));
  Outcome requeue = Cli("failed requeue --count 0", Env());
  EXPECT_EQ(requeue.code, 0);
  EXPECT_EQ(media_.Len("media:sync:failed"), 0);
  EXPECT_EQ(media_.Len("media:sync:pending"), 1);
}

TEST_F(CliStackTest, JsonLogFormatWritesOneObjectPerLine) {
  Outcome run = Cli("run --drain", Env() + "LOG_FORMAT=json LOG_LEVEL=info");
  ASSERT_EQ(run.code, 0) << run.output;
  int json_lines = 0;
  std::istringstream lines(run.output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("summary:", 0) == 0) continue;  // the drain summary goes to stdout
    Json entry = Json::parse(line, nullptr, false);
    ASSERT_FALSE(entry.is_discarded()) << line;
    EXPECT_TRUE(entry.contains("ts"));
    EXPECT_TRUE(entry.contains("level"));
    EXPECT_TRUE(entry.contains("msg"));
    ++json_lines;
  }
  EXPECT_GE(json_lines, 2);  // at least "starting" and "queue drained"
  EXPECT_THAT(run.output, HasSubstr("queue drained"));
}

TEST_F(CliStackTest, StatusFailsClearlyWhenRedisIsUnreachable) {
  Outcome status = Cli("status", "REDIS_URL=redis://127.0.0.1:1/0");
  EXPECT_EQ(status.code, 1);
  EXPECT_THAT(status.output, HasSubstr("127.0.0.1:1"));
}

}  // namespace
}  // namespace media_sync::testing
