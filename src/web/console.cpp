#include "web/console.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <exception>
#include <functional>
#include <iterator>
#include <utility>

#include "core/job.h"
#include "report/failed_entries.h"
#include "report/status_report.h"
#include "web/assets.h"

namespace media_sync::web {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// No script but the console's own file, no style but its stylesheet (so no
// inline script or style, whatever a page shows), no framing, nothing
// fetched from elsewhere, forms posted only here.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

constexpr const char* kJsonType = "application/json; charset=utf-8";
constexpr const char* kHtmlType = "text/html; charset=utf-8";

// Bounds of the API's inputs.
constexpr int64_t kDefaultPage = 50;
constexpr int64_t kMaxPage = 500;
constexpr size_t kMaxGrep = 1024;
constexpr size_t kMaxBox = 256;
constexpr size_t kMaxIndexes = 1000;
constexpr int64_t kJobsPerWorker = 50;
constexpr size_t kMaxPauseReason = 200;
// The box id that names MINIO_ENDPOINT, as `media-sync boxes` takes it.
constexpr std::string_view kDefaultBox = "default";

std::string Dump(const Json& document) {
  // Payloads may hold bytes that are not UTF-8: replaced, never an exception.
  return document.dump(-1, ' ', false, Json::error_handler_t::replace);
}

HttpResponse JsonResponse(int status, const Json& document) {
  HttpResponse response;
  response.status = status;
  response.Set("Content-Type", kJsonType);
  response.body = Dump(document) + "\n";
  return response;
}

HttpResponse ErrorResponse(int status, const std::string& message) {
  return JsonResponse(status, Json{{"error", message}});
}

// The status of an API answer that failed on a service.
HttpResponse ServiceError(const Error& error) {
  return ErrorResponse(error.kind == ErrorKind::kOutage ? 503 : 500, error.message);
}

std::string Fill(std::string text, const std::string& placeholder, const std::string& value) {
  for (size_t at = text.find(placeholder); at != std::string::npos;
       at = text.find(placeholder, at + value.size())) {
    text.replace(at, placeholder.size(), value);
  }
  return text;
}

std::string AssetText(std::string_view name) {
  const Asset* asset = FindAsset(name);
  return asset == nullptr ? std::string() : std::string(asset->body);
}

std::optional<int64_t> ParseCount(const std::string& text) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < 0) {
    return std::nullopt;
  }
  return value;
}

// Whether the browser says the request comes from another site's page (a
// cross-site form or script): such a request may change nothing. Clients
// that are not browsers send no Sec-Fetch-Site.
bool CrossSite(const HttpRequest& request) {
  const std::string* site = request.Header("sec-fetch-site");
  return site != nullptr && *site != "same-origin" && *site != "none";
}

bool IsJsonBody(const HttpRequest& request) {
  const std::string* type = request.Header("content-type");
  if (type == nullptr) return false;
  std::string media = report::Lower(type->substr(0, type->find(';')));
  while (!media.empty() && media.back() == ' ') media.pop_back();
  return media == "application/json";
}

// `next` of the login form: a path of this console, else its root.
std::string SafeNext(const std::string& next) {
  if (next.empty() || next.front() != '/' || next.starts_with("//") ||
      next.find_first_of("\\\r\n") != std::string::npos) {
    return "/";
  }
  return next;
}

std::string Describe(const Caller& caller, const HttpRequest& request) {
  const char* via = caller.via == Caller::Via::kBearer   ? "bearer token"
                    : caller.via == Caller::Via::kCookie ? "login session"
                                                         : "no credentials";
  return std::string(via) + " from " + request.peer;
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// ---- what a request asks for ----

struct Console::Work {
  enum class Kind {
    kStatus,
    kActivity,
    kWorkers,
    kFailedList,
    kFailedChange,
    kJob,
    kBoxPause,
  };
  Kind kind = Kind::kStatus;
  // kActivity
  int minutes = report::kActivityMaxMinutes;
  // kFailedList, kFailedChange
  report::FailedFilter filter;
  int64_t offset = 0;
  int64_t limit = kDefaultPage;
  // kFailedChange
  bool purge = false;
  bool all = false;
  std::vector<int64_t> indexes;
  std::vector<std::string> ids;
  bool by_indexes = false;
  Caller caller;
  // kJob
  std::string sha256;
  // kBoxPause (purge: resume)
  std::string box;
  std::string reason;
};

struct Console::Decision {
  std::optional<HttpResponse> response;  // answered at once
  bool cacheable = false;                // an asset, the same for everyone
  Work work;                             // else this, on a handler thread
};

Console::Readers::Readers(const config::RedisAddress& redis)
    : admin(redis), fleet(redis), finder(redis), pauses(redis) {}

Console::Console(const config::Options& options, ConsoleSettings settings)
    : options_(options),
      settings_(settings),
      access_(AccessSettings{options.web_read_token, options.web_token}) {
  if (!options_.database_url.empty()) {
    catalog::PgCatalogOptions catalog_options;
    catalog_options.pool_size = 2;
    catalog_options.query_timeout = std::chrono::seconds(10);
    catalog_options.application_name = "media-sync web";
    catalog_ = std::make_unique<catalog::PgCatalog>(options_.database_conninfo, catalog_options);
  }
  shell_ = Fill(AssetText("index.html"), "{{BASE}}", HtmlEscape(options_.web_base_path));
}

Console::~Console() = default;

std::unique_ptr<Console::Readers> Console::TakeReaders() {
  {
    MutexLock lock(readers_mu_);
    if (!idle_readers_.empty()) {
      auto readers = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return readers;
    }
  }
  return std::make_unique<Readers>(options_.redis);
}

void Console::GiveBack(std::unique_ptr<Readers> readers) {
  MutexLock lock(readers_mu_);
  idle_readers_.push_back(std::move(readers));
}

// Holds one set of Redis connections for the scope of a request.
class Console::ReadersLease {
 public:
  explicit ReadersLease(Console& console) : console_(console), readers_(console.TakeReaders()) {}
  ~ReadersLease() { console_.GiveBack(std::move(readers_)); }
  ReadersLease(const ReadersLease&) = delete;
  ReadersLease& operator=(const ReadersLease&) = delete;
  Readers* operator->() { return readers_.get(); }

 private:
  Console& console_;
  std::unique_ptr<Readers> readers_;
};

Result<Json> Console::Cached(Snapshot& snapshot, const std::function<Result<Json>()>& read) {
  auto fresh = [&]() -> std::optional<Json> {
    MutexLock lock(snapshot.mu);
    if (snapshot.value && Clock::now() - snapshot.taken < settings_.snapshot_ttl) {
      return snapshot.value;
    }
    return std::nullopt;
  };
  if (auto value = fresh()) return *value;
  // One client reads; the others wait for it and take what it read.
  MutexLock refreshing(snapshot.refresh);
  if (auto value = fresh()) return *value;
  auto value = read();
  if (!value) return value.error();
  MutexLock lock(snapshot.mu);
  snapshot.value = *value;
  snapshot.taken = Clock::now();
  return value;
}

void Console::Invalidate() {
  for (Snapshot* snapshot : {&status_, &workers_}) {
    MutexLock lock(snapshot->mu);
    snapshot->value.reset();
  }
}

HttpResponse Console::Refused(int status, const std::string& reason) {
  HttpResponse response = ErrorResponse(status, reason);
  response.Set("Content-Security-Policy", kContentSecurityPolicy);
  response.Set("X-Content-Type-Options", "nosniff");
  response.Set("X-Frame-Options", "DENY");
  response.Set("Referrer-Policy", "no-referrer");
  response.Set("Cache-Control", "no-store");
  return response;
}

namespace {

// The headers every answer carries.
HttpResponse Secured(HttpResponse response, bool cacheable) {
  response.Set("Content-Security-Policy", kContentSecurityPolicy);
  response.Set("X-Content-Type-Options", "nosniff");
  response.Set("X-Frame-Options", "DENY");
  response.Set("Referrer-Policy", "no-referrer");
  response.Set("Cross-Origin-Opener-Policy", "same-origin");
  response.Set("Cross-Origin-Resource-Policy", "same-origin");
  response.Set("Cache-Control", cacheable ? "no-cache" : "no-store");
  return response;
}

// The path below the base path; a proxy may have stripped the prefix already.
std::string LocalPath(const std::string& path, const std::string& base) {
  if (base.empty()) return path;
  if (path == base) return "/";
  if (path.starts_with(base + "/")) return path.substr(base.size());
  return path;
}

HttpResponse MethodNotAllowed(const std::string& allow) {
  HttpResponse response = ErrorResponse(405, "use " + allow);
  response.Set("Allow", allow);
  return response;
}

}  // namespace

std::optional<HttpResponse> Console::Quick(const HttpRequest& request) {
  Decision decision = Decide(request);
  if (decision.response) return Secured(std::move(*decision.response), decision.cacheable);
  return std::nullopt;
}

HttpResponse Console::Handle(const HttpRequest& request) {
  ++handling_;
  struct Done {
    std::atomic<int>& handling;
    ~Done() { --handling; }
  } done{handling_};
  try {
    Decision decision = Decide(request);
    if (decision.response) return Secured(std::move(*decision.response), decision.cacheable);
    return Secured(Run(decision.work, request), false);
  } catch (const std::exception& e) {
    // A bug must cost one answer, never the process.
    spdlog::error("web: {} {}: {}", request.method, request.path, e.what());
    return Secured(ErrorResponse(500, "internal error"), false);
  }
}

Console::Decision Console::Decide(const HttpRequest& request) {
  Decision decision;
  auto answer = [&decision](HttpResponse response) {
    decision.response = std::move(response);
    return std::move(decision);
  };
  const std::string path = LocalPath(request.path, options_.web_base_path);
  const bool get = request.method == "GET" || request.method == "HEAD";
  const bool post = request.method == "POST";

  // Assets and the probe: the same for everyone, and no data in them.
  if (path.starts_with("/assets/")) {
    if (!get) return answer(MethodNotAllowed("GET"));
    const Asset* asset = FindAsset(path.substr(8));
    if (asset == nullptr || asset->name == "index.html" || asset->name == "login.html") {
      return answer(ErrorResponse(404, "no such asset"));
    }
    HttpResponse response;
    response.Set("Content-Type", std::string(asset->content_type));
    response.body = std::string(asset->body);
    decision.cacheable = true;
    return answer(std::move(response));
  }
  if (path == "/healthz") {
    if (!get) return answer(MethodNotAllowed("GET"));
    // Answered from memory, however busy the handler threads are: `handling`
    // says how many API calls they work on now.
    return answer(JsonResponse(200, Json{{"ok", true}, {"handling", handling_.load()}}));
  }

  const Caller caller = access_.Identify(request.Header("authorization"), request.Header("cookie"));
  if (path == "/login") {
    if (get) {
      // Where to go once logged in: ?next=/failed (a path of this console).
      std::string next = "/";
      if (auto query = ParseForm(request.query)) {
        for (const auto& [key, value] : *query) {
          if (key == "next") next = value;
        }
      }
      return answer(LoginPage(200, next, ""));
    }
    if (post) return answer(Login(request));
    return answer(MethodNotAllowed("GET, POST"));
  }
  if (path == "/logout") {
    if (!post) return answer(MethodNotAllowed("POST"));
    return answer(Logout(request, caller));
  }

  // Changes are checked by their own rules, which ask more than reading.
  const bool api = path.starts_with("/api/");
  const bool failed_change = path == "/api/failed/requeue" || path == "/api/failed/purge";
  const bool box_change =
      path.starts_with("/api/boxes/") && (path.ends_with("/pause") || path.ends_with("/resume"));
  if (failed_change || box_change) return DecideChange(request, path, caller);

  // Everything else shows the fleet: reading may need a token.
  if (caller.via == Caller::Via::kBearer && caller.bad_credentials) {
    HttpResponse response = ErrorResponse(401, "the bearer token is not valid");
    response.Set("WWW-Authenticate", "Bearer realm=\"media-sync\"");
    return answer(std::move(response));
  }
  if (access_.ReadNeedsToken() && caller.role == Role::kNone) {
    if (!api && get) return answer(LoginPage(401, request.path, ""));
    HttpResponse response = ErrorResponse(
        401, caller.bad_credentials ? "the session expired: log in again"
                                    : "reading needs WEB_READ_TOKEN or WEB_TOKEN (Authorization: "
                                      "Bearer, or log in)");
    response.Set("WWW-Authenticate", "Bearer realm=\"media-sync\"");
    return answer(std::move(response));
  }

  if (!api) {
    static const std::vector<std::string> kPages = {"/", "/failed", "/workers", "/boxes", "/jobs"};
    bool page =
        std::find(kPages.begin(), kPages.end(), path) != kPages.end() ||
        (path.starts_with("/jobs/") && path.size() > 6 && path.find('/', 6) == std::string::npos);
    if (!page) return answer(ErrorResponse(404, "no such page"));
    if (!get) return answer(MethodNotAllowed("GET"));
    return answer(Page());
  }

  // The API.
  auto query = ParseForm(request.query);
  if (!query) return answer(ErrorResponse(400, "the query string does not decode"));
  auto param = [&query](const std::string& name) -> std::string {
    for (const auto& [key, value] : *query) {
      if (key == name) return value;
    }
    return "";
  };
  Work& work = decision.work;
  if (path == "/api/session") {
    if (!get) return answer(MethodNotAllowed("GET"));
    return answer(Session(caller));
  }
  if (path == "/api/status" || path == "/api/workers" || path == "/api/activity") {
    if (!get) return answer(MethodNotAllowed("GET"));
    work.kind = path == "/api/status"    ? Work::Kind::kStatus
                : path == "/api/workers" ? Work::Kind::kWorkers
                                         : Work::Kind::kActivity;
    if (work.kind == Work::Kind::kActivity && !param("minutes").empty()) {
      auto minutes = ParseCount(param("minutes"));
      if (!minutes || *minutes < 1 || *minutes > report::kActivityMaxMinutes) {
        return answer(ErrorResponse(400, "minutes must be a whole number from 1 to " +
                                             std::to_string(report::kActivityMaxMinutes)));
      }
      work.minutes = static_cast<int>(*minutes);
    }
    return decision;
  }
  if (path == "/api/failed") {
    if (!get) return answer(MethodNotAllowed("GET"));
    work.kind = Work::Kind::kFailedList;
    work.filter = report::FailedFilter{param("grep"), param("box")};
    if (work.filter.grep.size() > kMaxGrep || work.filter.box.size() > kMaxBox) {
      return answer(ErrorResponse(400, "grep or box is too long"));
    }
    if (!param("limit").empty()) {
      auto limit = ParseCount(param("limit"));
      if (!limit || *limit < 1 || *limit > kMaxPage) {
        return answer(ErrorResponse(
            400, "limit must be a whole number from 1 to " + std::to_string(kMaxPage)));
      }
      work.limit = *limit;
    }
    if (!param("offset").empty()) {
      auto offset = ParseCount(param("offset"));
      if (!offset) return answer(ErrorResponse(400, "offset must be a whole number from 0"));
      work.offset = *offset;
    }
    return decision;
  }
  if (path.starts_with("/api/jobs/")) {
    if (!get) return answer(MethodNotAllowed("GET"));
    auto decoded = PercentDecode(path.substr(10), false);
    if (!decoded) return answer(ErrorResponse(400, "the job's name does not decode"));
    auto sha256 = report::LookupSha256(*decoded);
    if (!sha256) return answer(ErrorResponse(400, sha256.error().message));
    work.kind = Work::Kind::kJob;
    work.sha256 = *sha256;
    return decision;
  }

  return answer(ErrorResponse(404, "no such API"));
}

Console::Decision Console::DecideChange(const HttpRequest& request, const std::string& path,
                                        const Caller& caller) {
  Decision decision;
  auto answer = [&decision](HttpResponse response) {
    decision.response = std::move(response);
    return std::move(decision);
  };
  Work& work = decision.work;
  if (request.method != "POST") return answer(MethodNotAllowed("POST"));
  if (CrossSite(request)) {
    return answer(ErrorResponse(403, "a request from another site's page may change nothing"));
  }
  if (!access_.ChangesEnabled()) {
    return answer(ErrorResponse(403, "the console is read-only: WEB_TOKEN is not set"));
  }
  if (caller.via == Caller::Via::kCookie && caller.bad_credentials) {
    return answer(ErrorResponse(401, "the session expired: log in again"));
  }
  if (caller.via == Caller::Via::kBearer && caller.bad_credentials) {
    HttpResponse response = ErrorResponse(401, "the bearer token is not valid");
    response.Set("WWW-Authenticate", "Bearer realm=\"media-sync\"");
    return answer(std::move(response));
  }
  if (caller.role == Role::kNone) {
    HttpResponse response =
        ErrorResponse(401, "a change needs WEB_TOKEN (Authorization: Bearer) or a login session");
    response.Set("WWW-Authenticate", "Bearer realm=\"media-sync\"");
    return answer(std::move(response));
  }
  if (caller.role != Role::kWrite) {
    return answer(ErrorResponse(403, "this token may read, not change: a change needs WEB_TOKEN"));
  }
  if (caller.via == Caller::Via::kCookie &&
      !AccessControl::CsrfMatches(caller, request.Header("x-csrf-token"))) {
    return answer(ErrorResponse(403, "missing or wrong X-CSRF-Token (GET /api/session gives it)"));
  }
  if (!IsJsonBody(request)) {
    return answer(ErrorResponse(415, "send the body as application/json"));
  }
  Json body = Json::parse(request.body.empty() ? "{}" : request.body, nullptr,
                          /*allow_exceptions=*/false);
  if (!body.is_object()) return answer(ErrorResponse(400, "the body must be a JSON object"));

  if (path.starts_with("/api/boxes/")) {
    // /api/boxes/{id}/pause {"reason": "..."}, /api/boxes/{id}/resume
    const bool pause = path.ends_with("/pause");
    std::string encoded = path.substr(11, path.rfind('/') - 11);
    auto box = PercentDecode(encoded, false);
    if (!box || box->empty() || box->find('/') != std::string::npos) {
      return answer(ErrorResponse(400, "the box's id does not decode"));
    }
    for (const auto& [key, value] : body.items()) {
      if (key != "reason" || !pause) {
        return answer(ErrorResponse(400, "unknown field " + Json(key).dump()));
      }
    }
    work.kind = Work::Kind::kBoxPause;
    work.caller = caller;
    work.box = *box;
    work.purge = !pause;
    work.reason = "paused from the web console";
    if (body.contains("reason")) {
      if (!body["reason"].is_string()) {
        return answer(ErrorResponse(400, "reason must be a string"));
      }
      std::string reason = body["reason"].get<std::string>();
      if (reason.size() > kMaxPauseReason) {
        return answer(ErrorResponse(
            400, "reason must be at most " + std::to_string(kMaxPauseReason) + " bytes"));
      }
      if (std::any_of(reason.begin(), reason.end(),
                      [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
        return answer(ErrorResponse(400, "reason must hold no control character"));
      }
      if (!reason.empty()) work.reason = reason;
    }
    return decision;
  }

  // {"indexes":[..],"ids":[..]}, {"grep":..,"box":..} or {"all":true}
  for (const auto& [key, value] : body.items()) {
    if (key != "indexes" && key != "ids" && key != "grep" && key != "box" && key != "all") {
      return answer(ErrorResponse(400, "unknown field " + Json(key).dump()));
    }
  }
  work.kind = Work::Kind::kFailedChange;
  work.purge = path.ends_with("/purge");
  work.caller = caller;
  if (body.contains("indexes")) {
    const Json& indexes = body["indexes"];
    if (!indexes.is_array() || indexes.empty() || indexes.size() > kMaxIndexes) {
      return answer(ErrorResponse(400, "indexes must be an array of 1 to " +
                                           std::to_string(kMaxIndexes) + " entry indexes"));
    }
    for (const Json& index : indexes) {
      if (!index.is_number_integer() || index.get<int64_t>() < 0) {
        return answer(ErrorResponse(400, "indexes must be whole numbers from 0"));
      }
      work.indexes.push_back(index.get<int64_t>());
    }
    if (body.contains("ids")) {
      const Json& ids = body["ids"];
      if (!ids.is_array() || ids.size() != indexes.size()) {
        return answer(ErrorResponse(400, "ids must be an array as long as indexes"));
      }
      for (const Json& id : ids) {
        if (!id.is_string() || id.get<std::string>().size() > 64) {
          return answer(ErrorResponse(400, "ids must be the entries' ids, as /api/failed gives"));
        }
        work.ids.push_back(id.get<std::string>());
      }
    }
    if (body.contains("grep") || body.contains("box") || body.contains("all")) {
      return answer(ErrorResponse(400, "give indexes, or a filter, or all: one of them"));
    }
    work.by_indexes = true;
    return decision;
  }
  if (body.contains("all")) {
    if (body["all"] != true || body.contains("grep") || body.contains("box")) {
      return answer(ErrorResponse(400, "all must be true, and alone"));
    }
    work.all = true;
    return decision;
  }
  for (const char* field : {"grep", "box"}) {
    if (body.contains(field) && !body[field].is_string()) {
      return answer(ErrorResponse(400, std::string(field) + " must be a string"));
    }
  }
  work.filter = report::FailedFilter{body.value("grep", ""), body.value("box", "")};
  if (work.filter.grep.size() > kMaxGrep || work.filter.box.size() > kMaxBox) {
    return answer(ErrorResponse(400, "grep or box is too long"));
  }
  if (work.filter.empty()) {
    return answer(ErrorResponse(
        400,
        "say which entries: {\"indexes\":[...]}, {\"grep\":\"TEXT\",\"box\":\"ID\"} or "
        "{\"all\":true}"));
  }
  return decision;
}

HttpResponse Console::Run(const Work& work, const HttpRequest& request) {
  // Reads that walk a whole queue are few at once: the rest come back later.
  struct ScanSlot {
    std::atomic<int>& scans;
    bool held;
    ScanSlot(std::atomic<int>& counter, int limit) : scans(counter), held(++counter <= limit) {}
    ~ScanSlot() { --scans; }
    ScanSlot(const ScanSlot&) = delete;
    ScanSlot& operator=(const ScanSlot&) = delete;
  };
  auto busy = [] {
    HttpResponse response = ErrorResponse(503, "busy walking the queues: try again in a moment");
    response.Set("Retry-After", "1");
    return response;
  };

  ReadersLease readers(*this);
  switch (work.kind) {
    case Work::Kind::kStatus: {
      auto status = Cached(status_, [&] {
        return report::CollectStatus(options_, readers->admin, readers->fleet, catalog_.get());
      });
      if (!status) return ServiceError(status.error());
      return JsonResponse(200, *status);
    }
    case Work::Kind::kWorkers: {
      auto workers = Cached(workers_, [&] {
        return report::CollectWorkers(readers->admin, readers->fleet, options_.s3.bucket,
                                      kJobsPerWorker);
      });
      if (!workers) return ServiceError(workers.error());
      return JsonResponse(200, *workers);
    }
    case Work::Kind::kActivity: {
      Snapshot* snapshot = nullptr;
      {
        MutexLock lock(activity_mu_);
        auto& slot = activity_[work.minutes];
        if (!slot) slot = std::make_unique<Snapshot>();
        snapshot = slot.get();
      }
      auto activity = Cached(*snapshot, [&] {
        return report::CollectActivity(readers->fleet, work.minutes,
                                       std::chrono::system_clock::now());
      });
      if (!activity) return ServiceError(activity.error());
      return JsonResponse(200, *activity);
    }
    case Work::Kind::kFailedList: {
      ScanSlot slot(scans_, work.filter.empty() ? INT32_MAX : settings_.max_scans);
      if (!slot.held) return busy();
      auto page = report::FailedPageJson(readers->admin, work.filter, work.offset, work.limit);
      if (!page) return ServiceError(page.error());
      return JsonResponse(200, *page);
    }
    case Work::Kind::kJob: {
      ScanSlot slot(scans_, settings_.max_scans);
      if (!slot.held) return busy();
      auto found = report::LookUpJob(work.sha256, readers->finder, readers->admin, readers->fleet,
                                     catalog_.get(), options_.s3.bucket, settings_.lookup_budget);
      if (!found) return ServiceError(found.error());
      return JsonResponse(200, *found);
    }
    case Work::Kind::kBoxPause: {
      // The name a pause is kept under, as `media-sync boxes pause` keeps it:
      // "" for MINIO_ENDPOINT ("default", unless a box has that id).
      std::string name = work.box;
      if (!work.purge) {
        if (catalog_ == nullptr) {
          return ErrorResponse(503, "DATABASE_URL is not set: the console cannot tell a box");
        }
        auto endpoint = catalog_->BoxEndpoint(work.box);
        if (!endpoint) return ServiceError(endpoint.error());
        if (!endpoint->has_value()) {
          if (work.box != kDefaultBox) {
            return ErrorResponse(404, "no storage box " + work.box +
                                          " in storage_boxes (\"default\" is MINIO_ENDPOINT)");
          }
          name.clear();
        }
        const std::string by = "web console, " + Describe(work.caller, request);
        auto paused = readers->pauses.Pause(
            name, queue::BoxPause{work.reason, by, IsoTimestamp(std::chrono::system_clock::now())});
        if (!paused) return ServiceError(paused.error());
        Invalidate();
        spdlog::info("web: paused box {} ({}) for {}", work.box, Json(work.reason).dump(),
                     Describe(work.caller, request));
        return JsonResponse(200,
                            Json{{"box", work.box}, {"paused", true}, {"was_paused", !*paused}});
      }
      // A box removed from the catalog while paused can still be resumed.
      auto listed = readers->pauses.List();
      if (!listed) return ServiceError(listed.error());
      if (work.box == kDefaultBox && listed->count(work.box) == 0) name.clear();
      auto resumed = readers->pauses.Resume(name);
      if (!resumed) return ServiceError(resumed.error());
      Invalidate();
      spdlog::info("web: resumed box {} ({}) for {}", work.box,
                   *resumed ? "was paused" : "was not paused", Describe(work.caller, request));
      return JsonResponse(200, Json{{"box", work.box}, {"resumed", *resumed}});
    }
    case Work::Kind::kFailedChange: {
      ScanSlot slot(scans_, work.by_indexes ? INT32_MAX : settings_.max_scans);
      if (!slot.held) return busy();
      queue::QueueAdmin& admin = readers->admin;
      const char* verb = work.purge ? "purged" : "requeued";
      int64_t matched = 0;
      int64_t done = 0;
      std::string which;
      if (work.all) {
        which = "all";
        if (work.purge) {
          // Exactly the entries counted now, never one that fails meanwhile.
          auto seen = admin.SnapshotFailed();
          if (!seen) return ServiceError(seen.error());
          auto purged = admin.PurgeFailedSnapshot(*seen);
          if (!purged) return ServiceError(purged.error());
          matched = seen->count;
          done = *purged;
        } else {
          // The runbook's RPOPLPUSH, oldest first, each entry atomically.
          auto length = admin.FailedLength();
          if (!length) return ServiceError(length.error());
          auto moved = admin.RequeueFailed(*length);
          if (!moved) return ServiceError(moved.error());
          matched = *length;
          done = *moved;
        }
      } else {
        std::vector<report::FailedQueueEntry> entries;
        if (work.by_indexes) {
          auto selection = report::SelectFailed(admin, work.indexes, work.ids);
          if (!selection) return ServiceError(selection.error());
          entries = std::move(selection->entries);
          which = std::to_string(work.indexes.size()) + " entries by index";
          matched = static_cast<int64_t>(work.indexes.size());
        } else {
          auto found = report::MatchingFailed(admin, work.filter);
          if (!found) return ServiceError(found.error());
          entries = std::move(*found);
          // As JSON text: the filter is the client's, and stays on one log line.
          which = "matching " + Json(work.filter.Describe().substr(1)).dump();
          matched = static_cast<int64_t>(entries.size());
        }
        // Oldest first, so that they are served in the order they failed.
        std::sort(entries.begin(), entries.end(),
                  [](const auto& a, const auto& b) { return a.index > b.index; });
        std::vector<std::string> raw;
        raw.reserve(entries.size());
        std::transform(entries.begin(), entries.end(), std::back_inserter(raw),
                       [](const auto& entry) { return entry.raw; });
        auto acted = work.purge ? admin.DeleteFailedEntries(raw) : admin.RequeueFailedEntries(raw);
        if (!acted) return ServiceError(acted.error());
        done = std::count(acted->begin(), acted->end(), true);
      }
      const int64_t missing = matched - done;  // requeued or purged meanwhile, or past the end
      Invalidate();
      spdlog::info("web: {} {} of {} failed entries ({}) for {}", verb, done, matched, which,
                   Describe(work.caller, request));
      return JsonResponse(200, Json{{verb, done}, {"matched", matched}, {"missing", missing}});
    }
  }
  return ErrorResponse(500, "unknown work");
}

HttpResponse Console::Page() const {
  HttpResponse response;
  response.Set("Content-Type", kHtmlType);
  response.body = shell_;
  return response;
}

HttpResponse Console::LoginPage(int status, const std::string& next,
                                const std::string& message) const {
  std::string intro;
  if (access_.ReadNeedsToken()) {
    intro = "This console needs a token to be read (WEB_READ_TOKEN, or WEB_TOKEN to make changes).";
  } else if (access_.ChangesEnabled()) {
    intro = "Anyone who reaches this console may read it; changes (requeue, purge) need WEB_TOKEN.";
  } else {
    intro = "No token is set: this console is open for reading and read-only.";
  }
  std::string page = AssetText("login.html");
  page = Fill(page, "{{BASE}}", HtmlEscape(options_.web_base_path));
  page = Fill(page, "{{INTRO}}", HtmlEscape(intro));
  page = Fill(page, "{{MESSAGE}}", HtmlEscape(message));
  page = Fill(page, "{{NEXT}}", HtmlEscape(SafeNext(next)));
  HttpResponse response;
  response.status = status;
  response.Set("Content-Type", kHtmlType);
  response.body = std::move(page);
  return response;
}

HttpResponse Console::Login(const HttpRequest& request) {
  if (CrossSite(request)) {
    return ErrorResponse(403, "a request from another site's page may not log in");
  }
  const std::string* type = request.Header("content-type");
  if (type == nullptr || !report::Lower(*type).starts_with("application/x-www-form-urlencoded")) {
    return ErrorResponse(415, "send the login form as application/x-www-form-urlencoded");
  }
  auto form = ParseForm(request.body);
  if (!form) return ErrorResponse(400, "the form does not decode");
  std::string token;
  std::string next = "/";
  for (const auto& [name, value] : *form) {
    if (name == "token") token = value;
    if (name == "next") next = value;
  }
  next = SafeNext(next);
  Role role = access_.RoleOf(token);
  if (role == Role::kNone) {
    spdlog::warn("web: refused a login from {}", request.peer);
    return LoginPage(401, next, "That token is not valid.");
  }
  std::string id = access_.OpenSession(role);
  spdlog::info("web: login ({}) from {}", ToString(role), request.peer);
  const std::string& base = options_.web_base_path;
  std::string cookie = std::string(AccessControl::kCookieName) + "=" + id +
                       "; Path=" + (base.empty() ? "/" : base + "/") +
                       "; HttpOnly; SameSite=Strict; Max-Age=43200";
  if (const std::string* proto = request.Header("x-forwarded-proto");
      proto != nullptr && report::Lower(*proto) == "https") {
    cookie += "; Secure";
  }
  HttpResponse response;
  response.status = 303;
  response.Set("Set-Cookie", cookie);
  response.Set("Location", base + next);
  return response;
}

HttpResponse Console::Logout(const HttpRequest& request, const Caller& caller) {
  if (CrossSite(request)) return ErrorResponse(403, "a request from another site's page");
  if (caller.via == Caller::Via::kCookie && !caller.bad_credentials) {
    if (!AccessControl::CsrfMatches(caller, request.Header("x-csrf-token"))) {
      return ErrorResponse(403, "missing or wrong X-CSRF-Token");
    }
    access_.CloseSession(caller.session_id);
  }
  const std::string& base = options_.web_base_path;
  HttpResponse response = JsonResponse(200, Json{{"logged_out", true}});
  response.Set("Set-Cookie", std::string(AccessControl::kCookieName) +
                                 "=; Path=" + (base.empty() ? "/" : base + "/") +
                                 "; HttpOnly; SameSite=Strict; Max-Age=0");
  return response;
}

HttpResponse Console::Session(const Caller& caller) const {
  const char* via = caller.via == Caller::Via::kBearer && !caller.bad_credentials   ? "bearer"
                    : caller.via == Caller::Via::kCookie && !caller.bad_credentials ? "cookie"
                                                                                    : "open";
  Json session{{"read_token_required", access_.ReadNeedsToken()},
               {"changes_enabled", access_.ChangesEnabled()},
               {"role", ToString(caller.bad_credentials ? Role::kNone : caller.role)},
               {"via", via},
               {"csrf_token", caller.via == Caller::Via::kCookie && !caller.bad_credentials
                                  ? Json(caller.csrf_token)
                                  : Json(nullptr)},
               // POST /api/boxes/{id}/pause|resume: the boxes page offers them.
               {"box_pause", true},
               {"base_path", options_.web_base_path}};
  return JsonResponse(200, session);
}

}  // namespace media_sync::web
