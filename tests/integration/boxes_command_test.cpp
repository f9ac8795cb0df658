// `media-sync boxes check` against real servers: a good box, a wrong
// secret, a missing bucket the keys may not create, a box that hangs, and a
// server whose clock is 20 minutes off; each verdict names its cause. And
// `boxes list` against a known state.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX kill, sigprocmask
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/cli_runner.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using namespace std::chrono_literals;

// The strict gateway in front of the first s3rver, on a clock `offset`
// away from ours: its Date headers and its signature-time check use it, as
// a server whose time is wrong.
class SkewedGateway {
 public:
  SkewedGateway(const LocalStack& stack, std::chrono::seconds offset) {
    dir_ = stack.StateDir() + "/skewed-gateway-" + std::to_string(getpid());
    std::filesystem::create_directories(dir_);
    std::vector<std::string> args = {"node",
                                     SourcePath("tests/support/strict_s3_gateway.js"),
                                     "--port",
                                     "0",
                                     "--port-file",
                                     dir_ + "/port",
                                     "--upstream",
                                     stack.Get("STACK_S3_DIRECT_ENDPOINT"),
                                     "--clock-offset-seconds",
                                     std::to_string(offset.count())};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      execvp("node", argv.data());
      _exit(127);
    }
    const std::string port_file = dir_ + "/port";
    EXPECT_TRUE(WaitUntil([&] { return std::filesystem::exists(port_file); }, 10s));
    std::ifstream file(port_file);
    std::stringstream port;
    port << file.rdbuf();
    endpoint_ = "127.0.0.1:" + Trim(port.str());
  }
  ~SkewedGateway() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  SkewedGateway(const SkewedGateway&) = delete;
  SkewedGateway& operator=(const SkewedGateway&) = delete;

  const std::string& endpoint() const { return endpoint_; }

 private:
  std::string dir_;
  std::string endpoint_;
  pid_t pid_ = -1;
};

class BoxesCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
  }
  // The line of one step of a check's output.
  static std::string Step(const std::string& out, const std::string& name) {
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.size() > 11 && line.substr(11, name.size() + 1) == name + " ") return line;
    }
    return "(no step " + name + ")";
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
};

TEST_F(BoxesCommandTest, AGoodBoxPassesEveryStepAndLeavesNothingBehind) {
  CliOutcome strict = RunCli(stack_, "boxes check box-a");
  EXPECT_EQ(strict.code, 0) << strict.all();
  for (const char* step : {"resolve", "connect", "answer", "clock", "credentials", "bucket",
                           "write", "read", "delete"}) {
    EXPECT_THAT(Step(strict.out, step), HasSubstr("  ok ")) << strict.out;
  }
  EXPECT_THAT(Step(strict.out, "tls"), HasSubstr("skipped  tls          plain HTTP"));
  EXPECT_THAT(Step(strict.out, "read"), HasSubstr("verified (size, SHA-256, x-amz-meta-sha256)"));
  // The gateway verifies like AWS S3 and MinIO; s3rver alone does not.
  EXPECT_THAT(Step(strict.out, "payload-hash"),
              HasSubstr("ok       payload-hash refuses a body that does not match its signed "
                        "SHA-256"));
  EXPECT_THAT(Step(strict.out, "checksum"), HasSubstr("ok       checksum     refuses a wrong"));
  EXPECT_THAT(strict.out, HasSubstr("box box-a: ready"));

  CliOutcome lenient = RunCli(stack_, "boxes check box-b");
  EXPECT_EQ(lenient.code, 0) << lenient.all();
  EXPECT_THAT(Step(lenient.out, "payload-hash"), HasSubstr("warn     payload-hash stores a body"));
  EXPECT_THAT(Step(lenient.out, "checksum"), HasSubstr("warn     checksum     ignores"));
  // No probe object stays on either box.
  EXPECT_EQ(media_.ObjectKeys("box-a"), std::vector<std::string>{});
  EXPECT_EQ(media_.ObjectKeys("box-b"), std::vector<std::string>{});
}

TEST_F(BoxesCommandTest, AWrongSecretIsNamed) {
  CliOutcome outcome =
      RunCli(stack_, "boxes check box-a", {{"MINIO_SECRET_KEY", "not-the-secret"}});
  EXPECT_EQ(outcome.code, 1) << outcome.all();
  EXPECT_THAT(Step(outcome.out, "credentials"),
              HasSubstr("FAIL     credentials  the secret key is wrong for access key S3RVER "
                        "(MINIO_SECRET_KEY) (HTTP 403 SignatureDoesNotMatch"));
  EXPECT_THAT(Step(outcome.out, "write"), HasSubstr("skipped"));
  EXPECT_THAT(outcome.out, HasSubstr("box box-a: NOT READY (failed: credentials)"));
  EXPECT_THAT(outcome.all(), Not(HasSubstr("not-the-secret")));
}

TEST_F(BoxesCommandTest, AMissingBucketTheKeysMayNotCreateIsNamed) {
  CliOutcome outcome = RunCli(stack_, "boxes check box-a",
                              {{"MINIO_ACCESS_KEY", stack_.Get("STACK_S3_LIMITED_ACCESS_KEY")},
                               {"MINIO_SECRET_KEY", stack_.Get("STACK_S3_LIMITED_SECRET_KEY")},
                               {"MINIO_BUCKET", "never-created"}});
  EXPECT_EQ(outcome.code, 1) << outcome.all();
  EXPECT_THAT(Step(outcome.out, "credentials"),
              HasSubstr("ok       credentials  access key LIMITED"));
  EXPECT_THAT(Step(outcome.out, "bucket"),
              HasSubstr("FAIL     bucket       bucket never-created does not exist and these keys "
                        "may not create it"));
  EXPECT_THAT(Step(outcome.out, "bucket"), HasSubstr("AccessDenied"));
  EXPECT_THAT(outcome.out, HasSubstr("NOT READY (failed: bucket)"));
  EXPECT_FALSE(std::filesystem::exists(stack_.StateDir() + "/s3/never-created"));

  // With the keys that may, the check creates it as a first job would.
  CliOutcome allowed = RunCli(stack_, "boxes check box-a", {{"MINIO_BUCKET", "created-by-check"}});
  EXPECT_EQ(allowed.code, 0) << allowed.all();
  EXPECT_THAT(Step(allowed.out, "bucket"), HasSubstr("did not exist: created"));
}

TEST_F(BoxesCommandTest, AHangingBoxFailsAtItsAnswerWithinTheTimeout) {
  ScopedFreeze frozen(stack_.Pid("s3-2"));
  auto started = std::chrono::steady_clock::now();
  CliOutcome outcome = RunCli(stack_, "boxes check box-b --timeout 2");
  auto took = std::chrono::steady_clock::now() - started;
  frozen.Thaw();
  EXPECT_EQ(outcome.code, 1) << outcome.all();
  EXPECT_THAT(Step(outcome.out, "connect"), HasSubstr("ok "));
  EXPECT_THAT(Step(outcome.out, "answer"),
              HasSubstr("FAIL     answer       no reply within 2 s: the server accepts "
                        "connections but does not answer"));
  EXPECT_THAT(Step(outcome.out, "credentials"), HasSubstr("skipped"));
  EXPECT_LT(took, 10s);
}

TEST_F(BoxesCommandTest, AClockTwentyMinutesOffIsNamed) {
  SkewedGateway gateway(stack_, std::chrono::minutes(20));
  CliOutcome outcome = RunCli(stack_, "boxes check --endpoint " + gateway.endpoint());
  EXPECT_EQ(outcome.code, 1) << outcome.all();
  EXPECT_THAT(Step(outcome.out, "clock"),
              MatchesRegex(".*FAIL     clock        the server's clock is (19 min 5[0-9]|20 min "
                           "[0-9]) s ahead of ours: S3 refuses requests signed more than 15 min "
                           "off \\(RequestTimeTooSkewed\\).*"));
  EXPECT_THAT(Step(outcome.out, "credentials"),
              HasSubstr("refused as signed at the wrong time: see clock"));
}

TEST_F(BoxesCommandTest, AnUnknownBoxIsBadUsage) {
  CliOutcome outcome = RunCli(stack_, "boxes check nope");
  EXPECT_EQ(outcome.code, 2) << outcome.all();
  EXPECT_THAT(outcome.err, HasSubstr("no storage box nope in storage_boxes"));
}

TEST_F(BoxesCommandTest, ListShowsEachBoxWithItsCountersAndState) {
  std::vector<Json> jobs = {media_.Make(1000, "box-a", 900), media_.Make(2000, "box-a", 901),
                            media_.Make(3000, "box-b", 902)};
  media_.Push(jobs[0]);
  media_.Push(jobs[2]);
  WorkerProcess worker(stack_, {}, {"run", "--drain"});
  ASSERT_EQ(worker.WaitExit(60s), 0) << worker.Log();
  // What workers last reported of the boxes (their monitors write these).
  stack_.RedisCli(
      "HSET media:sync:boxes box-a " +
      ShellQuote(R"({"endpoint":"x","up":true,"error":"","worker":"w1","reported_at":"t"})") +
      " box-b " +
      ShellQuote(
          R"({"endpoint":"x","up":false,"error":"connection refused","worker":"w2","reported_at":"t"})"));

  CliOutcome outcome = RunCli(stack_, "boxes list --json --objects");
  ASSERT_EQ(outcome.code, 0) << outcome.all();
  Json boxes = Json::parse(outcome.out);
  std::map<std::string, Json> by_id;
  for (const Json& box : boxes) by_id[box["box"]] = box;
  ASSERT_EQ(by_id.count("box-a"), 1u) << outcome.out;
  EXPECT_EQ(by_id["box-a"]["used_bytes"], 1000);
  EXPECT_EQ(by_id["box-a"]["reserved_bytes"], 2000);
  EXPECT_EQ(by_id["box-a"]["unsynced_rows"], 1);
  EXPECT_EQ(by_id["box-a"]["objects"], 1);
  EXPECT_EQ(by_id["box-a"]["state"], "up");
  EXPECT_EQ(by_id["box-b"]["used_bytes"], 3000);
  EXPECT_EQ(by_id["box-b"]["state"], "down");
  EXPECT_EQ(by_id["box-b"]["error"], "connection refused");
  EXPECT_EQ(by_id["default"]["state"], "unknown");
  EXPECT_EQ(by_id["box-b"]["endpoint"], "http://" + stack_.Get("STACK_S3_2_ENDPOINT"));
  EXPECT_EQ(by_id["default"]["endpoint"], "http://" + stack_.Get("MINIO_ENDPOINT"));

  CliOutcome text = RunCli(stack_, "boxes list");
  ASSERT_EQ(text.code, 0) << text.all();
  EXPECT_THAT(text.out, MatchesRegex("(.|\n)*box-a +up +[^ ]+ +1.0 KB +2.0 KB +1\n(.|\n)*"));
  EXPECT_THAT(text.out, HasSubstr("    connection refused\n"));
}

}  // namespace
}  // namespace media_sync::testing
