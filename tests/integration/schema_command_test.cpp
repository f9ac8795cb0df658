// `media-sync schema check|apply` on a platform's own media_files table (the
// contract's columns and primary key, none of our indexes), and the plans of
// every statement `run`, `status`, `reconcile` and `enqueue` send, read from
// PostgreSQL's own auto_explain: no sequential scan of media_files once the
// indexes are in place. The table here is small (a CI suite); bench/
// catalog_scale.sh does the same on 10 million rows.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/cli_runner.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// Synced rows the platform stored before: enough that a sequential scan and
// an index scan are different plans to the planner.
constexpr int kSyncedRows = 100000;

class SchemaCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
    // The platform's table: its primary key and an index of its own, none of
    // ours (a test before may have dropped the key, and Reset keeps the schema).
    stack_.Sql("DROP INDEX IF EXISTS media_files_unsynced");
    stack_.Sql("DROP INDEX IF EXISTS media_files_sha256");
    stack_.Sql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = "
        "'media_files_pkey') THEN ALTER TABLE media_files ADD PRIMARY KEY (sha256); END IF; "
        "END $$");
    stack_.Sql("CREATE INDEX IF NOT EXISTS platform_by_box ON media_files (storage_box_id)");
    stack_.Sql(
        "INSERT INTO media_files (sha256, s3_key, file_size, storage_box_id, created_at, "
        "synced_at) SELECT encode(sha256(('synced' || g)::bytea), 'hex'), 'media/old/' || g, "
        "1000, NULL, now() - interval '30 days', now() - interval '29 days' "
        "FROM generate_series(1, " +
        std::to_string(kSyncedRows) + ") g");
    stack_.Sql("ANALYZE media_files");
  }
  void TearDown() override { StopExplaining(); }

  std::string IndexesOfMediaFiles() const {
    return stack_.Sql(
        "SELECT string_agg(c.relname || ':' || i.indisvalid, ',' ORDER BY c.relname) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = 'media_files'::regclass");
  }

  // Every statement of every new session is logged with its plan.
  void ExplainEverything() {
    stack_.Sql("ALTER SYSTEM SET session_preload_libraries = 'auto_explain'");
    stack_.Sql("SELECT pg_reload_conf()");
    // Known only once a session has loaded the module.
    stack_.Sql("ALTER SYSTEM SET auto_explain.log_min_duration = 0");
    stack_.Sql("SELECT pg_reload_conf()");
    explaining_ = true;
  }
  void StopExplaining() {
    if (!explaining_) return;
    stack_.Sql("ALTER SYSTEM RESET auto_explain.log_min_duration");
    stack_.Sql("ALTER SYSTEM RESET session_preload_libraries");
    stack_.Sql("SELECT pg_reload_conf()");
    explaining_ = false;
  }
  std::string LogPath() const { return stack_.StateDir() + "/postgres.log"; }
  uintmax_t LogSize() const { return fs::file_size(LogPath()); }
  // The plans logged since `from`, one block each ("Query Text: ..." and the plan).
  std::vector<std::string> PlansSince(uintmax_t from) const {
    std::ifstream log(LogPath());
    log.seekg(static_cast<std::streamoff>(from));
    std::stringstream text;
    text << log.rdbuf();
    std::vector<std::string> plans;
    std::string line;
    bool in_plan = false;
    while (std::getline(text, line)) {
      if (line.find("plan:") != std::string::npos && line.find("duration:") != std::string::npos) {
        plans.emplace_back();
        in_plan = true;
      } else if (in_plan && !line.empty() && line[0] == '\t') {
        plans.back() += line + "\n";
      } else {
        in_plan = false;
      }
    }
    return plans;
  }
  // The plans that read media_files whole, and the statements behind them.
  static std::vector<std::string> SequentialScans(const std::vector<std::string>& plans) {
    std::vector<std::string> scans;
    for (const std::string& plan : plans) {
      if (plan.find("Seq Scan on media_files") != std::string::npos) scans.push_back(plan);
    }
    return scans;
  }
  static bool AnyPlanUses(const std::vector<std::string>& plans, const std::string& index) {
    for (const std::string& plan : plans) {
      if (plan.find("using " + index) != std::string::npos) return true;
    }
    return false;
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
  bool explaining_ = false;
};

TEST_F(SchemaCommandTest, CheckNamesTheMissingIndexAndApplyBuildsOnlyThat) {
  const std::string rows_before = stack_.Sql("SELECT count(*), sum(file_size) FROM media_files");

  CliOutcome check = RunCli(stack_, "schema check");
  EXPECT_EQ(check.code, 1) << check.all();
  EXPECT_THAT(check.out, HasSubstr("media_files_unsynced"));
  EXPECT_THAT(check.all(), HasSubstr("media_files_unsynced is missing"));
  EXPECT_THAT(check.out, HasSubstr("present (as media_files_pkey)"));
  EXPECT_THAT(check.out, HasSubstr("run `media-sync schema apply`"));

  // status names it, and the command, without counting it a problem.
  CliOutcome status = RunCli(stack_, "status");
  EXPECT_EQ(status.code, 0) << status.all();
  EXPECT_THAT(status.out, HasSubstr("media_files_unsynced is missing"));
  EXPECT_THAT(status.out, HasSubstr("media-sync schema apply"));
  CliOutcome json = RunCli(stack_, "status --json");
  ASSERT_EQ(json.code, 0) << json.all();
  Json parsed = Json::parse(json.out);
  ASSERT_TRUE(parsed["schema"].is_array()) << json.out;
  ASSERT_EQ(parsed["schema"].size(), 1u) << json.out;
  EXPECT_THAT(parsed["schema"][0].get<std::string>(), HasSubstr("media_files_unsynced"));
  EXPECT_THAT(parsed["problems"].dump(), Not(HasSubstr("index")));

  CliOutcome apply = RunCli(stack_, "schema apply");
  EXPECT_EQ(apply.code, 0) << apply.all();
  EXPECT_THAT(apply.out, HasSubstr("building index media_files_unsynced"));
  EXPECT_THAT(apply.out, HasSubstr("CREATE INDEX CONCURRENTLY IF NOT EXISTS"));
  EXPECT_EQ(Trim(IndexesOfMediaFiles()),
            "media_files_pkey:true,media_files_unsynced:true,platform_by_box:true");
  EXPECT_EQ(Trim(stack_.Sql("SELECT pg_get_indexdef('media_files_unsynced'::regclass)")),
            "CREATE INDEX media_files_unsynced ON public.media_files USING btree (created_at) "
            "WHERE (synced_at IS NULL)");
  EXPECT_EQ(stack_.Sql("SELECT count(*), sum(file_size) FROM media_files"), rows_before);

  CliOutcome after = RunCli(stack_, "schema check");
  EXPECT_EQ(after.code, 0) << after.all();
  EXPECT_THAT(after.out, HasSubstr("every index media-sync needs is in place"));
  Json healthy_schema = Json::parse(RunCli(stack_, "status --json").out);
  EXPECT_EQ(healthy_schema["schema"], Json::array());

  CliOutcome again = RunCli(stack_, "schema apply");
  EXPECT_EQ(again.code, 0) << again.all();
  EXPECT_THAT(again.out, HasSubstr("nothing to do"));
}

TEST_F(SchemaCommandTest, ApplyRebuildsOurIndexLeftInvalidByAnInterruptedBuild) {
  // A concurrent build that fails half-way leaves its index behind, INVALID:
  // here a unique one over values that repeat.
  media_.MakeMany(3, 1000, "box-a", 700);
  RunStatus("psql -X -q -h 127.0.0.1 -p " + stack_.Get("STACK_POSTGRES_PORT") +
            " -U postgres -d media -c " +
            ShellQuote("CREATE UNIQUE INDEX CONCURRENTLY media_files_unsynced ON media_files "
                       "(file_size) WHERE synced_at IS NULL") +
            " 2>/dev/null");
  ASSERT_THAT(IndexesOfMediaFiles(), HasSubstr("media_files_unsynced:false"));

  CliOutcome check = RunCli(stack_, "schema check");
  EXPECT_EQ(check.code, 1) << check.all();
  EXPECT_THAT(check.out, HasSubstr("invalid (an interrupted concurrent build)"));

  CliOutcome apply = RunCli(stack_, "schema apply");
  EXPECT_EQ(apply.code, 0) << apply.all();
  EXPECT_THAT(apply.out, HasSubstr("rebuilding index media_files_unsynced"));
  EXPECT_EQ(Trim(IndexesOfMediaFiles()),
            "media_files_pkey:true,media_files_unsynced:true,platform_by_box:true");
  EXPECT_THAT(stack_.Sql("SELECT pg_get_indexdef('media_files_unsynced'::regclass)"),
              HasSubstr("(created_at) WHERE (synced_at IS NULL)"));
  EXPECT_EQ(RunCli(stack_, "schema check").code, 0);
}

TEST_F(SchemaCommandTest, AUniqueIndexThatCannotBeBuiltLeavesNothingBehindAndSaysWhy) {
  // A platform table without a key on sha256, holding one sha256 twice.
  stack_.Sql("ALTER TABLE media_files DROP CONSTRAINT media_files_pkey");
  stack_.Sql(
      "INSERT INTO media_files (sha256, s3_key, file_size) SELECT sha256, s3_key, file_size "
      "FROM media_files LIMIT 1");
  CliOutcome check = RunCli(stack_, "schema check");
  EXPECT_EQ(check.code, 1) << check.all();
  EXPECT_THAT(check.all(), HasSubstr("media_files_sha256 is missing"));

  CliOutcome apply = RunCli(stack_, "schema apply");
  EXPECT_EQ(apply.code, 1) << apply.all();
  EXPECT_THAT(apply.err, HasSubstr("building index media_files_sha256"));
  EXPECT_THAT(apply.err, HasSubstr("is duplicated"));
  EXPECT_THAT(IndexesOfMediaFiles(), Not(HasSubstr("media_files_sha256")));
  // What could be built was not: apply stops at the first failure, and the
  // platform's table is as it was but for what apply names.
  EXPECT_THAT(IndexesOfMediaFiles(), HasSubstr("platform_by_box:true"));
}

TEST_F(SchemaCommandTest, NoStatementOfTheWorkerOrTheOperatorCommandsReadsMediaFilesWhole) {
  std::vector<Json> jobs = media_.MakeMany(20, 2000, "box-a", 800);
  stack_.Sql(
      "UPDATE media_files SET created_at = now() - interval '2 hours' WHERE synced_at IS NULL");
  ExplainEverything();

  // Without the index: status and reconcile scan the table (the check can fail).
  uintmax_t before = LogSize();
  ASSERT_EQ(RunCli(stack_, "status --json").code, 0);
  ASSERT_EQ(RunCli(stack_, "reconcile --older-than 0 --dry-run").code, 0);
  EXPECT_FALSE(SequentialScans(PlansSince(before)).empty());

  StopExplaining();
  ASSERT_EQ(RunCli(stack_, "schema apply").code, 0);
  stack_.Sql("ANALYZE media_files");
  ExplainEverything();

  uintmax_t after = LogSize();
  CliOutcome status = RunCli(stack_, "status --json");
  ASSERT_EQ(status.code, 0) << status.all();
  // The lost jobs are enqueued, then synced by a worker (every statement of a sync).
  CliOutcome reconcile = RunCli(stack_, "reconcile --older-than 0");
  ASSERT_EQ(reconcile.code, 0) << reconcile.all();
  EXPECT_THAT(reconcile.out, HasSubstr("enqueued 20 lost jobs"));
  WorkerProcess worker(stack_, {{"RECONCILE_INTERVAL_SECONDS", "0"}}, {"run", "--drain"});
  std::optional<int> exit_code = worker.WaitExit(std::chrono::seconds(120));
  ASSERT_TRUE(exit_code.has_value()) << worker.Log();
  EXPECT_EQ(*exit_code, 0) << worker.Log();
  EXPECT_EQ(media_.SyncedRows("box-a"), 20);
  std::string file = stack_.StateDir() + "/fresh.jpg";
  std::ofstream(file) << "a file enqueued by an operator";
  CliOutcome enqueue = RunCli(stack_, "enqueue --box box-a " + ShellQuote(file));
  ASSERT_EQ(enqueue.code, 0) << enqueue.all();

  std::vector<std::string> plans = PlansSince(after);
  std::vector<std::string> scans = SequentialScans(plans);
  EXPECT_TRUE(scans.empty()) << scans.size() << " plans read media_files whole, the first:\n"
                             << scans.front();
  // The statements were logged: the checks above looked at real plans.
  EXPECT_TRUE(AnyPlanUses(plans, "media_files_unsynced"));
  EXPECT_TRUE(AnyPlanUses(plans, "media_files_pkey"));
  EXPECT_GT(plans.size(), 10u);
}

}  // namespace
}  // namespace media_sync::testing
