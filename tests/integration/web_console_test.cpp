// `media-sync web` against the real stack, over HTTP: the JSON API answers
// what Redis and PostgreSQL hold (the status document as `status --json`,
// the failed queue, a job's places, the fleet's activity), changes move or
// delete exactly the entries asked for, the access rules hold (tokens, login
// sessions, CSRF, cross-site requests, read-only without WEB_TOKEN), every
// answer carries the security headers, and no client can starve the others
// or bloat the process. The pages themselves are tested in a browser
// (web_browser_test.cpp).
#include "support/web_console.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "core/error_texts.h"
#include "core/hash.h"
#include "core/job.h"
#include "support/cli_runner.h"
#include "support/hostile_clients.h"
#include "support/raw_http.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using namespace std::chrono_literals;

const std::string kWriteToken = "write-token-of-the-tests-0123";
const std::string kReadToken = "read-token-of-the-tests-0123";

std::map<std::string, std::string> Bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

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

// The keys of a document, recursively ("queues.pending", "boxes[].id").
std::set<std::string> Keys(const Json& document, const std::string& prefix = "") {
  std::set<std::string> keys;
  if (document.is_object()) {
    for (const auto& [key, value] : document.items()) {
      keys.insert(prefix + key);
      for (const auto& inner : Keys(value, prefix + key + ".")) keys.insert(inner);
    }
  } else if (document.is_array()) {
    for (const auto& item : document) {
      for (const auto& inner : Keys(item, prefix.substr(0, prefix.size() - 1) + "[].")) {
        keys.insert(inner);
      }
    }
  }
  return keys;
}

class WebConsoleTest : public ::testing::Test {
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

  // Four entries, oldest first: a payload that is not JSON, then jobs on
  // box-a, box-b, box-a. Indexes: a2 0, b1 1, a1 2, raw 3.
  void ParkFour() {
    raw_ = Entry("{not json", "Invalid job: payload is not valid JSON", 1);
    a1_ = Entry(FakeJob("a1", "box-a", 2048), "Size mismatch: expected 2048, got 10", 4);
    b1_ = Entry(FakeJob("b1", "box-b", 4096), std::string(kMissingEverywhere), 4);
    a2_ = Entry(FakeJob("a2", "box-a", 100), "Storage box box-a refused the upload", 4);
    Park({raw_, a1_, b1_, a2_});
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
  std::string raw_, a1_, b1_, a2_;
};

TEST_F(WebConsoleTest, StatusAnswersWhatStatusJsonPrints) {
  ParkFour();
  media_.Push(Json::parse(FakeJob("p1", "box-a", 10)));
  media_.Push(Json::parse(FakeJob("p2", "box-b", 20)));
  WebConsoleProcess web(stack_);

  HttpAnswer answer = web.Get("/api/status");
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_THAT(answer.Header("content-type"), StartsWith("application/json"));
  Json api = answer.json();
  CliOutcome cli = RunCli(stack_, "status --json");
  ASSERT_EQ(cli.code, 0) << cli.all();
  Json printed = Json::parse(cli.out);

  EXPECT_EQ(Keys(api), Keys(printed));
  for (const char* key : {"queues", "problems", "healthy", "unsynced_rows", "workers", "schema"}) {
    EXPECT_EQ(api[key], printed[key]) << key;
  }
  EXPECT_EQ(api["queues"]["failed"], 4);
  EXPECT_EQ(api["queues"]["pending"], 2);
  ASSERT_EQ(api["boxes"].size(), printed["boxes"].size());
  EXPECT_EQ(api["boxes"][0]["id"], "box-a");
  EXPECT_THAT(api["problems"].dump(), HasSubstr("4 failed jobs"));
}

TEST_F(WebConsoleTest, FailedListFiltersAndPagesAndShowsEachEntryWhole) {
  ParkFour();
  WebConsoleProcess web(stack_);

  Json page = web.Get("/api/failed?limit=2").json();
  EXPECT_EQ(page["total"], 4);
  EXPECT_EQ(page["matching"], 4);
  ASSERT_EQ(page["entries"].size(), 2u);
  EXPECT_EQ(page["entries"][0]["index"], 0);
  EXPECT_EQ(page["entries"][0]["entry"], Json::parse(a2_));
  EXPECT_EQ(page["entries"][0]["id"], Sha256Hex(a2_).substr(0, 16));
  EXPECT_EQ(page["entries"][0]["key"], Json::parse(a2_)["s3_key"]);
  EXPECT_EQ(page["entries"][0]["box"], "box-a");
  EXPECT_EQ(page["entries"][0]["size"], 100);
  EXPECT_EQ(page["entries"][1]["error"], kMissingEverywhere);

  page = web.Get("/api/failed?limit=2&offset=2").json();
  ASSERT_EQ(page["entries"].size(), 2u);
  EXPECT_EQ(page["entries"][0]["index"], 2);
  EXPECT_EQ(page["entries"][1]["index"], 3);
  EXPECT_EQ(page["entries"][1]["kind"], "not_a_job");

  page = web.Get("/api/failed?grep=SIZE+mismatch").json();
  EXPECT_EQ(page["total"], 4);
  EXPECT_EQ(page["matching"], 1);
  ASSERT_EQ(page["entries"].size(), 1u);
  EXPECT_EQ(page["entries"][0]["index"], 2);

  page = web.Get("/api/failed?box=box-a&limit=1&offset=1").json();
  EXPECT_EQ(page["matching"], 2);
  ASSERT_EQ(page["entries"].size(), 1u);
  EXPECT_EQ(page["entries"][0]["index"], 2);

  for (const char* bad : {"limit=0", "limit=501", "limit=ten", "offset=-1"}) {
    HttpAnswer answer = web.Get(std::string("/api/failed?") + bad);
    EXPECT_EQ(answer.status, 400) << bad;
    EXPECT_THAT(answer.json()["error"].get<std::string>(),
                HasSubstr(std::string(bad).substr(0, std::string(bad).find('='))))
        << bad;
  }
}

TEST_F(WebConsoleTest, RequeueByIndexesMovesTheEntriesThePageShowed) {
  ParkFour();
  WebConsoleProcess web(stack_, {{"WEB_TOKEN", kWriteToken}});
  Json shown = web.Get("/api/failed").json()["entries"];  // a2 0, b1 1, a1 2, raw 3
  // Two new failures shift every index by two before the operator acts.
  std::string n1 = Entry(FakeJob("n1", "box-b", 1), std::string(kMissingEverywhere), 4);
  std::string n2 = Entry(FakeJob("n2", "box-b", 2), std::string(kMissingEverywhere), 4);
  Park({n1, n2});

  HttpAnswer answer =
      web.Post("/api/failed/requeue",
               Json{{"indexes", {0, 2}}, {"ids", {shown[0]["id"], shown[2]["id"]}}}.dump(),
               Bearer(kWriteToken));
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(answer.json(), (Json{{"requeued", 2}, {"matched", 2}, {"missing", 0}}));
  // a1 failed first: it is served first.
  EXPECT_EQ(Pending(), (std::vector<std::string>{a2_, a1_}));
  EXPECT_EQ(Failed(), (std::vector<std::string>{n2, n1, b1_, raw_}));

  // An entry requeued meanwhile is reported, not replaced by another.
  answer = web.Post("/api/failed/purge", Json{{"indexes", {0}}, {"ids", {shown[0]["id"]}}}.dump(),
                    Bearer(kWriteToken));
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(answer.json(), (Json{{"purged", 0}, {"matched", 1}, {"missing", 1}}));
  EXPECT_EQ(Failed().size(), 4u);

  // Without ids, an index is what it holds now, as `failed requeue N`.
  answer = web.Post("/api/failed/purge", R"({"indexes":[1]})", Bearer(kWriteToken));
  EXPECT_EQ(answer.json()["purged"], 1);
  EXPECT_EQ(Failed(), (std::vector<std::string>{n2, b1_, raw_}));
}

TEST_F(WebConsoleTest, RequeueAndPurgeByFilterOrAllActOnEachEntryOnce) {
  ParkFour();
  WebConsoleProcess web(stack_, {{"WEB_TOKEN", kWriteToken}});
  HttpAnswer answer =
      web.Post("/api/failed/purge", R"({"grep":"size MISMATCH"})", Bearer(kWriteToken));
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(answer.json(), (Json{{"purged", 1}, {"matched", 1}, {"missing", 0}}));
  EXPECT_EQ(Failed(), (std::vector<std::string>{a2_, b1_, raw_}));

  answer = web.Post("/api/failed/requeue", R"({"box":"box-a"})", Bearer(kWriteToken));
  EXPECT_EQ(answer.json()["requeued"], 1);
  EXPECT_EQ(Pending(), (std::vector<std::string>{a2_}));

  answer = web.Post("/api/failed/requeue", R"({"all":true})", Bearer(kWriteToken));
  EXPECT_EQ(answer.json()["requeued"], 2);
  EXPECT_TRUE(Failed().empty());
  // The runbook's RPOPLPUSH: the oldest failure first, each behind the jobs
  // pending before it.
  EXPECT_EQ(Pending(), (std::vector<std::string>{b1_, raw_, a2_}));

  // Two operators requeueing the same 150 entries at once: each moves once.
  std::vector<std::string> many;
  for (int i = 0; i < 150; ++i) {
    many.push_back(Entry(FakeJob("m" + std::to_string(i), "box-b", 1), "Size mismatch: x", 4));
  }
  stack_.RedisCli("DEL media:sync:pending");
  std::string push = "LPUSH media:sync:failed";
  for (const auto& entry : many) push += " " + ShellQuote(entry);
  stack_.RedisCli(push);
  int64_t moved[2] = {0, 0};
  {
    std::jthread first([&] {
      moved[0] = web.Post("/api/failed/requeue", R"({"grep":"size"})", Bearer(kWriteToken))
                     .json()
                     .value("requeued", -1);
    });
    std::jthread second([&] {
      moved[1] = web.Post("/api/failed/requeue", R"({"grep":"size"})", Bearer(kWriteToken))
                     .json()
                     .value("requeued", -1);
    });
  }
  EXPECT_EQ(moved[0] + moved[1], 150);
  EXPECT_TRUE(Failed().empty());
  std::vector<std::string> pending = Pending();
  EXPECT_EQ(pending.size(), 150u);
  EXPECT_EQ(std::set<std::string>(pending.begin(), pending.end()).size(), 150u);

  // Bodies that say nothing clear are refused, naming the problem.
  Park({a1_});
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{}", "say which entries"},
      {R"({"indexes":[]})", "indexes must be an array"},
      {R"({"indexes":[-1]})", "whole numbers"},
      {R"({"indexes":[0],"ids":[]})", "ids must be an array as long as indexes"},
      {R"({"indexes":[0],"all":true})", "one of them"},
      {R"({"all":false})", "all must be true"},
      {R"({"all":true,"grep":"x"})", "alone"},
      {R"({"grep":5})", "grep must be a string"},
      {R"({"nope":1})", "unknown field \"nope\""},
      {"[0]", "JSON object"},
      {"not json", "JSON object"},
  };
  for (const auto& [body, problem] : bad) {
    HttpAnswer refused = web.Post("/api/failed/purge", body, Bearer(kWriteToken));
    EXPECT_EQ(refused.status, 400) << body;
    EXPECT_THAT(refused.json()["error"].get<std::string>(), HasSubstr(problem)) << body;
  }
  EXPECT_EQ(Failed(), (std::vector<std::string>{a1_}));
}

TEST_F(WebConsoleTest, WithoutWebTokenEveryChangeIsRefused) {
  ParkFour();
  WebConsoleProcess web(stack_, {{"WEB_TOKEN", ""}});
  EXPECT_EQ(web.Get("/api/failed").status, 200);  // reading needs no token
  for (const auto& headers : {std::map<std::string, std::string>{}, Bearer(kWriteToken)}) {
    for (const char* path : {"/api/failed/requeue", "/api/failed/purge"}) {
      HttpAnswer answer = web.Post(path, R"({"all":true})", headers);
      EXPECT_EQ(answer.status, 403) << path;
      EXPECT_THAT(answer.json()["error"].get<std::string>(), HasSubstr("read-only"));
    }
  }
  EXPECT_EQ(web.Post("/api/boxes/box-a/pause", "{}").status, 403);
  EXPECT_EQ(web.Get("/api/session").json()["changes_enabled"], false);
  EXPECT_EQ(Failed().size(), 4u);
  EXPECT_TRUE(Pending().empty());
}

TEST_F(WebConsoleTest, AChangeNeedsWebTokenOrALoginWithItsCsrfToken) {
  ParkFour();
  WebConsoleProcess web(stack_, {{"WEB_TOKEN", kWriteToken}, {"WEB_READ_TOKEN", kReadToken}});
  const std::string purge_one = R"({"indexes":[0]})";
  auto purge = [&](const std::map<std::string, std::string>& headers) {
    return web.Post("/api/failed/purge", purge_one, headers);
  };

  EXPECT_EQ(purge({}).status, 401);
  EXPECT_EQ(purge(Bearer("not-the-token-at-all-0000")).status, 401);
  HttpAnswer reader = purge(Bearer(kReadToken));
  EXPECT_EQ(reader.status, 403);
  EXPECT_THAT(reader.json()["error"].get<std::string>(), HasSubstr("may read, not change"));
  EXPECT_EQ(Failed().size(), 4u);

  // A login with a wrong token: the form again, and no session.
  HttpAnswer wrong = HttpCall(web.port(), "POST", "/login",
                              {{"Content-Type", "application/x-www-form-urlencoded"}},
                              "token=nope&next=%2Ffailed");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_TRUE(wrong.set_cookies.empty());
  EXPECT_THAT(wrong.body, HasSubstr("That token is not valid."));

  HttpAnswer login = HttpCall(web.port(), "POST", "/login",
                              {{"Content-Type", "application/x-www-form-urlencoded"}},
                              "token=" + kWriteToken + "&next=%2Ffailed");
  ASSERT_EQ(login.status, 303) << login.body;
  EXPECT_EQ(login.Header("location"), "/failed");
  ASSERT_EQ(login.set_cookies.size(), 1u);
  const std::string& set_cookie = login.set_cookies[0];
  EXPECT_THAT(set_cookie, AllOf(StartsWith("media_sync_session="), HasSubstr("; HttpOnly"),
                                HasSubstr("; SameSite=Strict"), HasSubstr("; Path=/;")));
  std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  std::map<std::string, std::string> with_cookie = {{"Cookie", cookie}};

  // The cookie alone changes nothing: a page of another site could send it.
  HttpAnswer no_csrf = purge(with_cookie);
  EXPECT_EQ(no_csrf.status, 403);
  EXPECT_THAT(no_csrf.json()["error"].get<std::string>(), HasSubstr("X-CSRF-Token"));
  EXPECT_EQ(purge({{"Cookie", cookie}, {"X-CSRF-Token", std::string(64, '0')}}).status, 403);
  EXPECT_EQ(Failed().size(), 4u);

  Json session = web.Get("/api/session", with_cookie).json();
  EXPECT_EQ(session["role"], "write");
  EXPECT_EQ(session["via"], "cookie");
  std::string csrf = session["csrf_token"];
  std::map<std::string, std::string> allowed = {{"Cookie", cookie}, {"X-CSRF-Token", csrf}};

  // What a browser says of a request from another site's page is refused,
  // cookie and CSRF token or not; so is a form's body.
  for (const char* site : {"cross-site", "same-site"}) {
    auto headers = allowed;
    headers["Sec-Fetch-Site"] = site;
    HttpAnswer answer = purge(headers);
    EXPECT_EQ(answer.status, 403) << site;
    EXPECT_THAT(answer.json()["error"].get<std::string>(), HasSubstr("another site")) << site;
  }
  auto form = allowed;
  form["Content-Type"] = "text/plain";
  EXPECT_EQ(web.Post("/api/failed/purge", purge_one, form).status, 415);
  EXPECT_EQ(Failed().size(), 4u);

  auto same_origin = allowed;
  same_origin["Sec-Fetch-Site"] = "same-origin";
  HttpAnswer done = purge(same_origin);
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(done.json()["purged"], 1);
  EXPECT_EQ(Failed(), (std::vector<std::string>{b1_, a1_, raw_}));
  HttpAnswer bearer = purge(Bearer(kWriteToken));  // no CSRF token needed: no cookie
  EXPECT_EQ(bearer.json()["purged"], 1);
  EXPECT_EQ(Failed(), (std::vector<std::string>{a1_, raw_}));

  // Changes are POST only; reading by GET changes nothing.
  EXPECT_EQ(web.Get("/api/failed/purge", Bearer(kWriteToken)).status, 405);
  EXPECT_EQ(web.Get("/api/failed/purge", Bearer(kWriteToken)).Header("allow"), "POST");

  // Logging out ends the session.
  HttpAnswer out = web.Post("/logout", "{}", allowed);
  EXPECT_EQ(out.status, 200);
  ASSERT_EQ(out.set_cookies.size(), 1u);
  EXPECT_THAT(out.set_cookies[0], HasSubstr("Max-Age=0"));
  EXPECT_EQ(purge(allowed).status, 401);

  // A session opened with the read token reads, and changes nothing.
  HttpAnswer read_login =
      HttpCall(web.port(), "POST", "/login",
               {{"Content-Type", "application/x-www-form-urlencoded"}}, "token=" + kReadToken);
  ASSERT_EQ(read_login.status, 303);
  std::string read_cookie =
      read_login.set_cookies[0].substr(0, read_login.set_cookies[0].find(';'));
  Json read_session = web.Get("/api/session", {{"Cookie", read_cookie}}).json();
  EXPECT_EQ(read_session["role"], "read");
  EXPECT_EQ(web.Get("/api/failed", {{"Cookie", read_cookie}}).status, 200);
  EXPECT_EQ(purge({{"Cookie", read_cookie},
                   {"X-CSRF-Token", read_session["csrf_token"].get<std::string>()}})
                .status,
            403);
  EXPECT_EQ(Failed().size(), 2u);
}

TEST_F(WebConsoleTest, WebReadTokenGuardsEveryPageAndApiCall) {
  WebConsoleProcess guarded(stack_, {{"WEB_READ_TOKEN", kReadToken}});
  for (const char* path : {"/", "/failed", "/workers", "/boxes", "/jobs/abc"}) {
    HttpAnswer page = guarded.Get(path);
    EXPECT_EQ(page.status, 401) << path;
    EXPECT_THAT(page.body, HasSubstr("<form method=\"post\" action=\"/login\">")) << path;
    EXPECT_THAT(page.body, Not(HasSubstr("app.js"))) << path;
    EXPECT_EQ(guarded.Get(path, Bearer(kReadToken)).status, 200) << path;
  }
  for (const char* path : {"/api/status", "/api/failed", "/api/workers", "/api/activity",
                           "/api/jobs/"
                           "0000000000000000000000000000000000000000000000000000000000000000"}) {
    HttpAnswer api = guarded.Get(path);
    EXPECT_EQ(api.status, 401) << path;
    EXPECT_THAT(api.json()["error"].get<std::string>(), HasSubstr("WEB_READ_TOKEN")) << path;
    EXPECT_EQ(api.Header("www-authenticate"), "Bearer realm=\"media-sync\"");
    EXPECT_EQ(guarded.Get(path, Bearer(kReadToken)).status, 200) << path;
  }
  // What holds no data needs no token: the script, the stylesheet, the probe.
  EXPECT_EQ(guarded.Get("/assets/app.js").status, 200);
  EXPECT_EQ(guarded.Get("/healthz").status, 200);

  WebConsoleProcess open(stack_);
  EXPECT_EQ(open.Get("/api/status").status, 200);
  EXPECT_EQ(open.Get("/").status, 200);
  // A wrong token is an error even where none is needed.
  EXPECT_EQ(open.Get("/api/status", Bearer("wrong-token-0000000000")).status, 401);
  // A proxy's Basic authentication passed through is not a token: it grants
  // nothing and refuses nothing.
  const std::map<std::string, std::string> basic = {{"Authorization", "Basic dXNlcjpwYXNz"}};
  EXPECT_EQ(open.Get("/api/status", basic).status, 200);
  EXPECT_EQ(guarded.Get("/api/status", basic).status, 401);
}

TEST_F(WebConsoleTest, EveryAnswerCarriesTheSecurityHeaders) {
  WebConsoleProcess web(stack_, {{"WEB_TOKEN", kWriteToken}});
  std::vector<HttpAnswer> answers = {
      web.Get("/"),
      web.Get("/failed"),
      web.Get("/assets/app.js"),
      web.Get("/assets/app.css"),
      web.Get("/api/status"),
      web.Get("/api/nothing"),
      web.Get("/nothing"),
      web.Post("/api/failed/purge", "{}"),
      web.Get("/login"),
      HttpCall(web.port(), "DELETE", "/api/status"),
  };
  RawConnection malformed(web.port());
  malformed.Send("GARBAGE\r\n\r\n", 5s);
  HttpReply refused = malformed.ReadResponse(5s);
  EXPECT_EQ(refused.status, 400);
  const std::string& raw = refused.headers;
  for (const auto& answer : answers) {
    if (answer.status == 0) continue;
    SCOPED_TRACE(std::to_string(answer.status) + " " + answer.body.substr(0, 80));
    std::string csp = answer.Header("content-security-policy");
    EXPECT_THAT(csp, HasSubstr("default-src 'none'"));
    EXPECT_THAT(csp, HasSubstr("script-src 'self';"));
    EXPECT_THAT(csp, HasSubstr("style-src 'self';"));
    EXPECT_THAT(csp, HasSubstr("frame-ancestors 'none'"));
    EXPECT_THAT(csp, Not(HasSubstr("unsafe")));
    EXPECT_EQ(answer.Header("x-content-type-options"), "nosniff");
    EXPECT_EQ(answer.Header("x-frame-options"), "DENY");
  }
  EXPECT_THAT(raw, HasSubstr("frame-ancestors 'none'"));
  EXPECT_EQ(answers[2].Header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(answers[3].Header("content-type"), "text/css; charset=utf-8");
  EXPECT_EQ(answers[4].Header("cache-control"), "no-store");
  EXPECT_EQ(answers[9].status, 405);
  // The pages hold no inline script or style: every script is a file.
  for (const HttpAnswer& page : {answers[0], answers[8]}) {
    EXPECT_EQ(page.status, 200);
    std::regex inline_script(R"(<script(?![^>]*\bsrc=)[^>]*>)");
    EXPECT_FALSE(std::regex_search(page.body, inline_script)) << page.body;
    EXPECT_THAT(page.body, Not(HasSubstr("style=")));
    EXPECT_FALSE(std::regex_search(page.body, std::regex(R"(\son[a-z]+=)")));  // onload=, ...
  }
}

// As `media-sync boxes pause|resume`: kept in Redis for every worker.
TEST_F(WebConsoleTest, ABoxIsPausedAndResumedFromTheApi) {
  WebConsoleProcess web(stack_, {{"WEB_TOKEN", kWriteToken}});
  auto paused = [&] { return Trim(stack_.RedisCli("--raw HGETALL media:sync:paused")); };

  HttpAnswer answer = web.Post("/api/boxes/box-b/pause", R"({"reason":"disk swap <b>now</b>"})",
                               Bearer(kWriteToken));
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(answer.json(), (Json{{"box", "box-b"}, {"paused", true}, {"was_paused", false}}));
  Json pause = Json::parse(stack_.RedisCli("--raw HGET media:sync:paused box-b"));
  EXPECT_EQ(pause["reason"], "disk swap <b>now</b>");
  EXPECT_THAT(pause["by"].get<std::string>(),
              HasSubstr("web console, bearer token from 127.0.0.1"));
  // The status document and the command line see it.
  Json status = web.Get("/api/status").json();
  ASSERT_EQ(status["boxes"][1]["id"], "box-b");
  EXPECT_EQ(status["boxes"][1]["paused"], true);
  EXPECT_EQ(status["boxes"][1]["pause"]["reason"], "disk swap <b>now</b>");
  CliOutcome listed = RunCli(stack_, "boxes list --json");
  EXPECT_THAT(listed.out, HasSubstr("disk swap <b>now</b>"));
  // Again: still paused, with the new reason.
  answer = web.Post("/api/boxes/box-b/pause", R"({"reason":"longer"})", Bearer(kWriteToken));
  EXPECT_EQ(answer.json()["was_paused"], true);

  // MINIO_ENDPOINT's jobs are paused as "default", kept under "".
  EXPECT_EQ(web.Post("/api/boxes/default/pause", "{}", Bearer(kWriteToken)).status, 200);
  EXPECT_EQ(Trim(stack_.RedisCli("--raw HEXISTS media:sync:paused ''")), "1");
  EXPECT_EQ(web.Post("/api/boxes/default/resume", "{}", Bearer(kWriteToken)).json()["resumed"],
            true);

  HttpAnswer unknown = web.Post("/api/boxes/box-z/pause", "{}", Bearer(kWriteToken));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_THAT(unknown.json()["error"].get<std::string>(), HasSubstr("no storage box box-z"));
  for (const auto& [body, problem] : std::vector<std::pair<std::string, std::string>>{
           {R"({"reason":5})", "reason must be a string"},
           {R"({"reason":")" + std::string(201, 'x') + R"("})", "at most 200 bytes"},
           {R"({"reason":"a\nb"})", "no control character"},
           {R"({"why":"x"})", "unknown field"}}) {
    HttpAnswer refused = web.Post("/api/boxes/box-a/pause", body, Bearer(kWriteToken));
    EXPECT_EQ(refused.status, 400) << body;
    EXPECT_THAT(refused.json()["error"].get<std::string>(), HasSubstr(problem)) << body;
  }
  // The rules of every change.
  EXPECT_EQ(web.Post("/api/boxes/box-a/pause", "{}").status, 401);
  EXPECT_EQ(web.Get("/api/boxes/box-a/pause", Bearer(kWriteToken)).status, 405);
  WebConsoleProcess read_only(stack_);
  EXPECT_EQ(read_only.Post("/api/boxes/box-a/pause", "{}", Bearer(kWriteToken)).status, 403);
  EXPECT_THAT(paused(), Not(HasSubstr("box-a")));

  answer = web.Post("/api/boxes/box-b/resume", "{}", Bearer(kWriteToken));
  EXPECT_EQ(answer.json(), (Json{{"box", "box-b"}, {"resumed", true}}));
  EXPECT_EQ(paused(), "");
  EXPECT_EQ(web.Post("/api/boxes/box-b/resume", "{}", Bearer(kWriteToken)).json()["resumed"],
            false);
  EXPECT_EQ(web.Get("/api/session").json()["box_pause"], true);
  EXPECT_THAT(web.process().Log(),
              HasSubstr("web: paused box box-b (\"disk swap <b>now</b>\") for bearer token"));
}

TEST_F(WebConsoleTest, ServedUnderItsBasePathBehindAProxy) {
  ParkFour();
  WebConsoleProcess web(stack_,
                        {{"WEB_BASE_PATH", "/ops/media-sync/"}, {"WEB_TOKEN", kWriteToken}});
  HttpAnswer page = web.Get("/ops/media-sync/");
  ASSERT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("src=\"/ops/media-sync/assets/app.js\""));
  EXPECT_THAT(page.body, HasSubstr("data-base=\"/ops/media-sync\""));
  EXPECT_EQ(web.Get("/ops/media-sync").status, 200);
  EXPECT_EQ(web.Get("/ops/media-sync/failed").status, 200);
  EXPECT_EQ(web.Get("/ops/media-sync/assets/app.css").status, 200);
  EXPECT_EQ(web.Get("/ops/media-sync/api/failed").json()["total"], 4);
  // A proxy that strips the prefix reaches the same console.
  EXPECT_EQ(web.Get("/api/failed").json()["total"], 4);
  EXPECT_EQ(web.Get("/failed").status, 200);

  HttpAnswer login = HttpCall(
      web.port(), "POST", "/ops/media-sync/login",
      {{"Content-Type", "application/x-www-form-urlencoded"}, {"X-Forwarded-Proto", "https"}},
      "token=" + kWriteToken + "&next=%2Fworkers");
  ASSERT_EQ(login.status, 303);
  EXPECT_EQ(login.Header("location"), "/ops/media-sync/workers");
  ASSERT_EQ(login.set_cookies.size(), 1u);
  EXPECT_THAT(login.set_cookies[0], HasSubstr("; Path=/ops/media-sync/;"));
  EXPECT_THAT(login.set_cookies[0], HasSubstr("; Secure"));
  // A next that leaves the console is not followed.
  HttpAnswer away = HttpCall(web.port(), "POST", "/ops/media-sync/login",
                             {{"Content-Type", "application/x-www-form-urlencoded"}},
                             "token=" + kWriteToken + "&next=%2F%2Fevil.example%2F");
  EXPECT_EQ(away.Header("location"), "/ops/media-sync/");
}

TEST_F(WebConsoleTest, JobLookupSaysWhereAFileIs) {
  WebConsoleProcess web(stack_);
  std::vector<Json> pending = {Json::parse(FakeJob("q1", "box-a", 1)),
                               Json::parse(FakeJob("q2", "box-a", 2)),
                               Json::parse(FakeJob("q3", "box-a", 3))};
  media_.PushAll(pending);  // q1 is served first
  std::string sha = pending[1]["sha256"];
  Json found = web.Get("/api/jobs/" + sha).json();
  EXPECT_EQ(found["state"], "pending");
  ASSERT_EQ(found["places"].size(), 1u);
  EXPECT_EQ(found["places"][0]["where"], "pending");
  EXPECT_EQ(found["places"][0]["position"], 1);  // one job ahead of it
  EXPECT_EQ(found["places"][0]["job"], pending[1]);
  EXPECT_EQ(found["searched"]["complete"], true);
  // By key, and in capitals.
  std::string key = pending[1]["s3_key"];
  EXPECT_EQ(web.Get("/api/jobs/" + key).json()["places"], found["places"]);
  std::string upper = sha;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  EXPECT_EQ(web.Get("/api/jobs/" + upper).json()["sha256"], sha);

  // Delayed, with its due time.
  std::string delayed = FakeJob("d1", "box-b", 5);
  stack_.RedisCli("ZADD media:sync:delayed 4102444800000 " + ShellQuote(delayed));
  found = web.Get("/api/jobs/" + Sha256Hex("d1")).json();
  EXPECT_EQ(found["state"], "delayed");
  EXPECT_EQ(found["places"][0]["due"], "2100-01-01T00:00:00.000Z");

  // Held by a worker, with its multipart upload's progress.
  std::string held = FakeJob("h1", "box-a", 100 << 20);
  std::string held_key = Json::parse(held)["s3_key"];
  stack_.RedisCli("SADD media:sync:workers worker-x");
  stack_.RedisCli("SET media:sync:worker:worker-x " +
                  ShellQuote(R"({"host":"h","pid":7,"started_at":"2026-01-01T00:00:00.000Z"})") +
                  " EX 60");
  stack_.RedisCli("LPUSH media:sync:processing:worker-x " + ShellQuote(held));
  stack_.RedisCli("HSET " +
                  ShellQuote("media:sync:upload:" + stack_.Get("MINIO_ENDPOINT") + "/" +
                             stack_.Get("MINIO_BUCKET") + "/" + held_key) +
                  " upload_id u part_size 8388608 1 '8388608 e1' 2 '8388608 e2'");
  found = web.Get("/api/jobs/" + Sha256Hex("h1")).json();
  EXPECT_EQ(found["state"], "processing");
  EXPECT_EQ(found["places"][0]["worker"], "worker-x");
  EXPECT_EQ(found["places"][0]["worker_live"], true);
  EXPECT_EQ(found["places"][0]["upload"],
            (Json{{"parts", 2}, {"bytes_stored", 16777216}, {"part_size", 8388608}}));
  Json workers = web.Get("/api/workers").json();
  ASSERT_EQ(workers["workers"].size(), 1u);
  EXPECT_EQ(workers["workers"][0]["host"], "h");
  EXPECT_EQ(workers["workers"][0]["jobs"][0]["upload"]["parts"], 2);

  // Failed, with why; synced, with its row.
  Park({Entry(FakeJob("f1", "box-b", 9), std::string(kMissingEverywhere), 4)});
  found = web.Get("/api/jobs/" + Sha256Hex("f1")).json();
  EXPECT_EQ(found["state"], "failed");
  EXPECT_EQ(found["places"][0]["error"], kMissingEverywhere);
  EXPECT_EQ(found["places"][0]["attempts"], 4);
  std::string synced = Sha256Hex("s1");
  stack_.Sql(
      "INSERT INTO media_files (sha256, s3_key, file_size, storage_box_id, created_at, "
      "synced_at) VALUES ('" +
      synced + "', '" + ContentKey(synced, "jpg") +
      "', 12, 'box-b', '2026-01-02T03:04:05Z', '2026-01-02T03:04:06.5Z')");
  found = web.Get("/api/jobs/" + synced).json();
  EXPECT_EQ(found["state"], "synced");
  EXPECT_TRUE(found["places"].empty());
  EXPECT_EQ(found["row"], (Json{{"sha256", synced},
                                {"s3_key", ContentKey(synced, "jpg")},
                                {"file_size", 12},
                                {"storage_box_id", "box-b"},
                                {"created_at", "2026-01-02T03:04:05.000Z"},
                                {"synced_at", "2026-01-02T03:04:06.500Z"}}));
  EXPECT_EQ(web.Get("/api/jobs/" + Sha256Hex("nowhere")).json()["state"], "unknown");

  for (const char* bad : {"abc", "media/ab/cd/xyz.jpg", "%zz"}) {
    HttpAnswer answer = web.Get(std::string("/api/jobs/") + bad);
    EXPECT_EQ(answer.status, 400) << bad;
  }
  EXPECT_THAT(web.Get("/api/jobs/abc").json()["error"].get<std::string>(),
              HasSubstr("not a sha256 (64 hexadecimal digits) nor an object key"));
}

// Workers publish per minute what they synced and their job faults by
// class; the console sums the last 24 hours.
TEST_F(WebConsoleTest, ActivityCountsSyncsAndFaultsByClassFromTheWorkers) {
  std::vector<Json> jobs;
  for (int i = 0; i < 3; ++i) jobs.push_back(media_.Make(1000 + i, "box-a", 500 + i));
  Json missing = media_.Make(77, "box-a", 600);
  std::filesystem::remove(missing["local_path"].get<std::string>());
  jobs.push_back(missing);
  media_.PushAll(jobs);
  media_.PushRaw(R"({"sha256":"nope"})");
  WebConsoleProcess web(stack_);
  WorkerProcess worker(stack_, {{"MAX_RETRIES", "0"}, {"WORKER_ID", "activity-worker"}});

  Json activity;
  bool counted = WaitUntil(
      [&] {
        activity = web.Get("/api/activity?minutes=10").json();
        return activity["totals"]["files"] == 3 && activity["totals"]["failed"] == 2;
      },
      30s);
  ASSERT_TRUE(counted) << activity.dump() << "\n" << worker.Log();
  EXPECT_EQ(activity["totals"]["bytes"], 1000 + 1001 + 1002);
  EXPECT_EQ(activity["faults_by_class"]["missing_file"], (Json{{"failed", 1}, {"retried", 0}}));
  EXPECT_EQ(activity["faults_by_class"]["invalid_job"], (Json{{"failed", 1}, {"retried", 0}}));
  EXPECT_EQ(activity["span_minutes"], 10);
  EXPECT_EQ(activity["minutes"].size(), 11u);
  Json workers = web.Get("/api/workers").json();
  EXPECT_EQ(workers["live_workers"], 1);
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.WaitExit(30s), 0);
  // The counters are kept for a day and more.
  std::string ttl =
      Trim(stack_.RedisCli("--raw EVAL \"local k = redis.call('KEYS', "
                           "'media:sync:throughput:*') return redis.call('TTL', "
                           "k[1])\" 0"));
  EXPECT_GT(std::stoll(ttl), 24 * 3600);
  EXPECT_EQ(web.Get("/api/activity?minutes=0").status, 400);
  EXPECT_EQ(web.Get("/api/activity?minutes=1441").status, 400);
}

TEST_F(WebConsoleTest, RequestsPastTheLimitsAreRefusedWithTheirStatus) {
  WebConsoleProcess web(stack_);
  auto refusal = [&](const std::string& bytes) {
    RawConnection connection(web.port());
    connection.Send(bytes, 5s);
    return connection.ReadResponse(5s);
  };
  // A request line that never ends is refused once past the head's limit.
  EXPECT_EQ(refusal("GET /" + std::string(64 << 10, 'a')).status, 414);
  EXPECT_EQ(refusal("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 << 10, 'b')).status,
            431);
  // A body larger than any change needs is refused before it is read.
  HttpReply body =
      refusal("POST /api/failed/purge HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n");
  EXPECT_EQ(body.status, 413);
  EXPECT_THAT(body.headers, HasSubstr("frame-ancestors 'none'"));
  EXPECT_EQ(refusal("POST /api/failed/purge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n")
                .status,
            411);
  EXPECT_EQ(refusal("GET / HTTP/2.0\r\n\r\n").status, 505);
  EXPECT_EQ(web.Get("/api/status").status, 200);
}

TEST_F(WebConsoleTest, ConnectionsHeldOpenAreReplacedByNewcomers) {
  WebConsoleProcess web(stack_);
  // More connections than the server keeps (256), each trickling a head that
  // never ends, or saying nothing at all.
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 300; ++i) {
    held.push_back(std::make_unique<RawConnection>(web.port()));
    ASSERT_TRUE(held.back()->connected());
    if (i % 2 == 0) held.back()->Send("GET /api/status HTTP/1.1\r\nHo", 1s);
  }
  // A newcomer is served at once, page, probe and API alike.
  for (const char* path : {"/healthz", "/", "/api/status", "/assets/app.js"}) {
    ProbeResult probe = Probe(web.port(), path, 3s);
    EXPECT_EQ(probe.reply.status, 200) << path;
    EXPECT_LT(probe.took, 1s) << path;
    Measure(std::string("web_answer_ms_under_300_held_connections") + path, probe.took.count(),
            "ms");
  }
  // Only as many of them as needed were closed to make room: those that
  // had waited longest.
  int closed = 0;
  for (auto& connection : held) closed += connection->Closed(10ms) ? 1 : 0;
  EXPECT_GE(closed, 300 - 256);
  EXPECT_LE(closed, 300 - 256 + 8);
}

TEST_F(WebConsoleTest, PagesAndTheProbeAnswerWhileRedisHangs) {
  ParkFour();
  WebConsoleProcess web(stack_);
  ASSERT_EQ(web.Get("/api/failed").status, 200);
  std::vector<std::jthread> callers;
  std::atomic<int> answered{0};
  {
    ScopedFreeze frozen(stack_.Pid("redis"));
    // More API calls than handler threads and their queue: they wait on
    // Redis (or are told the console is busy).
    for (int i = 0; i < 80; ++i) {
      callers.emplace_back([&] {
        if (web.Get("/api/failed?limit=10").status != 0) ++answered;
      });
    }
    ASSERT_TRUE(WaitUntil([&] { return web.Get("/healthz").json()["handling"] == 4; }, 10s))
        << "every handler thread waits on Redis";
    for (const char* path : {"/healthz", "/", "/failed", "/assets/app.css", "/api/session"}) {
      auto started = std::chrono::steady_clock::now();
      HttpAnswer answer = web.Get(path);
      EXPECT_EQ(answer.status, 200) << path;
      EXPECT_LT(std::chrono::steady_clock::now() - started, 1s) << path;
    }
  }
  callers.clear();  // joins: every call got an answer once Redis came back
  EXPECT_EQ(answered, 80);
  EXPECT_EQ(web.Get("/api/failed").json()["total"], 4);
}

TEST_F(WebConsoleTest, NoSecretIsShownOrLogged) {
  WebConsoleProcess web(stack_, {{"WEB_TOKEN", kWriteToken}, {"WEB_READ_TOKEN", kReadToken}});
  HttpAnswer login =
      HttpCall(web.port(), "POST", "/login",
               {{"Content-Type", "application/x-www-form-urlencoded"}}, "token=" + kWriteToken);
  ASSERT_EQ(login.status, 303);
  std::string session = login.set_cookies[0].substr(0, login.set_cookies[0].find(';'));
  HttpCall(web.port(), "POST", "/login", {{"Content-Type", "application/x-www-form-urlencoded"}},
           "token=wrong-token-0000000000");
  web.Post("/api/failed/purge", R"({"all":true})", Bearer(kWriteToken));
  Json status = web.Get("/api/status", Bearer(kReadToken)).json();
  Json session_json = web.Get("/api/session", {{"Cookie", session}}).json();
  std::string shown = status.dump() + session_json.dump();
  EXPECT_THAT(shown, Not(HasSubstr(kWriteToken)));
  EXPECT_THAT(shown, Not(HasSubstr(stack_.Get("MINIO_SECRET_KEY") + "\"")));

  std::string log = web.process().Log();
  EXPECT_THAT(log, HasSubstr("web: purged 0 of 0 failed entries (all) for bearer token from"));
  EXPECT_THAT(log, HasSubstr("refused a login from 127.0.0.1"));
  EXPECT_THAT(log, Not(HasSubstr(kWriteToken)));
  EXPECT_THAT(log, Not(HasSubstr(kReadToken)));
  EXPECT_THAT(log, Not(HasSubstr("wrong-token")));
  EXPECT_THAT(log, Not(HasSubstr(session.substr(session.find('=') + 1))));

  CliOutcome config =
      RunCli(stack_, "config", {{"WEB_TOKEN", kWriteToken}, {"WEB_READ_TOKEN", kReadToken}});
  EXPECT_THAT(config.out, HasSubstr("WEB_TOKEN"));
  EXPECT_THAT(config.out, Not(HasSubstr(kWriteToken)));
  EXPECT_THAT(config.out, Not(HasSubstr(kReadToken)));
}

TEST_F(WebConsoleTest, ABadSettingStopsItWithTheVariableNamed) {
  CliOutcome bad = RunCli(stack_, "web", {{"WEB_TOKEN", "short"}});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("WEB_TOKEN: must be at least 16 characters long"));
  WebConsoleProcess first(stack_);
  CliOutcome taken =
      RunCli(stack_, "web", {{"WEB_ADDRESS", "127.0.0.1:" + std::to_string(first.port())}});
  EXPECT_EQ(taken.code, 2);
  EXPECT_THAT(taken.err, HasSubstr("WEB_ADDRESS='127.0.0.1:" + std::to_string(first.port()) +
                                   "': cannot listen there"));
}

// The console under the hostile clients `media-sync run`'s endpoint is held
// to (support/hostile_clients.h), aimed at its API: while each runs, past
// the request timeout, the probe and a page answer within a second, on
// fresh connections, and the process's memory stays within a bound.
class WebConsoleHostileTest : public ::testing::TestWithParam<Load> {
 protected:
  LocalStack& stack_ = SharedStack();
};

TEST_P(WebConsoleHostileTest, TheProbeAndThePagesAnswerWithinASecondAndMemoryStaysBounded) {
  constexpr auto kLoadTime = 6s;  // past the 5 s a request may take
  constexpr int64_t kMemoryMargin = int64_t{64} << 20;
  stack_.Reset();
  WebConsoleProcess web(stack_, WithBoundedQuarantine({}));
  ASSERT_EQ(web.Get("/api/status").status, 200);
  const int64_t baseline = ResidentBytes(web.process().pid());
  MemoryWatch memory(web.process().pid(), baseline + kMemoryMargin);
  std::unique_ptr<HostileLoad> load = GetParam().start(web.port(), memory.over());

  const auto started = std::chrono::steady_clock::now();
  int probes = 0;
  int answered = 0;
  std::chrono::milliseconds slowest{0};
  std::string failures;
  std::stop_source never;
  while (std::chrono::steady_clock::now() - started < kLoadTime) {
    for (const char* path : {"/healthz", "/failed"}) {
      ProbeResult probe = Probe(web.port(), path, 3s);
      ++probes;
      slowest = std::max(slowest, probe.took);
      if (probe.reply.status == 200 && probe.took < 1s) {
        ++answered;
      } else if (failures.size() < 400) {
        failures += std::string(" [") + path + " " + std::to_string(probe.reply.status) +
                    " after " + std::to_string(probe.took.count()) + " ms]";
      }
    }
    Pause(never.get_token(), 100ms);
  }
  const std::string done = load->Done();
  load.reset();

  Measure("web_probe_slowest_ms_" + GetParam().name, slowest.count(), "ms");
  Measure("web_resident_growth_mib_" + GetParam().name, (memory.peak() - baseline) >> 20, "MiB");
  EXPECT_EQ(answered, probes) << probes - answered << " of " << probes
                              << " probes failed or took 1 s or more:" << failures
                              << " (load: " << done << ")";
  EXPECT_GE(probes, 10);
  EXPECT_LE(memory.peak(), baseline + kMemoryMargin)
      << "resident " << (memory.peak() >> 20) << " MiB, " << (baseline >> 20) << " MiB before";
  EXPECT_EQ(web.Get("/api/status").status, 200);
  EXPECT_TRUE(web.process().Running()) << web.process().Log();
}

INSTANTIATE_TEST_SUITE_P(HostileClients, WebConsoleHostileTest,
                         ::testing::ValuesIn(HostileLoads("/api/status")),
                         [](const ::testing::TestParamInfo<Load>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace media_sync::testing
