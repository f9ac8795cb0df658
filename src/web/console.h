// The web console (`media-sync web`): pages, assets and the JSON API, as the
// HttpHandler of web/http_server.h.
//
//   pages    GET /, /failed, /workers, /boxes, /jobs, /jobs/{sha256 or key}:
//            one HTML shell (web/assets/index.html) whose script renders the
//            page from the API and polls it; /login (form), POST /logout
//   assets   GET /assets/{name}: the embedded files (web/assets.h)
//   API      GET /api/session, /api/status (report/status_report.h, the
//            keys of `status --json`), /api/activity?minutes=, /api/workers,
//            /api/failed?grep=&box=&limit=&offset=, /api/jobs/{sha256 or key};
//            POST /api/failed/requeue and /api/failed/purge with
//            {"indexes":[..],"ids":[..]}, {"grep":..,"box":..} or
//            {"all":true}; POST /api/boxes/{id}/pause with {"reason": ".."}
//            and POST /api/boxes/{id}/resume (queue/box_pauses.h, as
//            `media-sync boxes pause|resume`; {id} "default" is
//            MINIO_ENDPOINT). Errors are {"error": "..."} with the status.
//   probe    GET /healthz: 200 from memory, for a proxy's health check
//            ({"ok":true,"handling":N}, N the API calls being handled).
//
// Everything is served under the base path (WEB_BASE_PATH) as well as
// without it, so a proxy may pass the prefix through or strip it.
//
// Access (web/access.h): reading needs a token only when WEB_READ_TOKEN is
// set; a change needs WEB_TOKEN (Bearer, or a login session plus its CSRF
// token in X-CSRF-Token), a JSON body, and no cross-site origin
// (Sec-Fetch-Site); without WEB_TOKEN every change is refused with 403.
// Every response carries a strict Content-Security-Policy (no inline script
// or style, no framing), nosniff, and no-store for anything but assets.
//
// Work: refusals, pages and assets are answered from memory on the server's
// event thread (Quick); the API's reads and changes run on handler threads
// (Handle), each with Redis connections of its own. The status, workers and
// activity documents are shared by every client for a couple of seconds;
// the reads that walk a whole queue (a filtered failed list, a job lookup)
// run two at a time at most, others are told to retry (503).
//
// Thread-safety: as HttpHandler requires.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "catalog/pg_catalog.h"
#include "config/options.h"
#include "queue/box_pauses.h"
#include "queue/fleet_stats.h"
#include "queue/job_finder.h"
#include "queue/queue_admin.h"
#include "report/fleet_views.h"
#include "util/mutex.h"
#include "web/access.h"
#include "web/http_server.h"

namespace media_sync::web {

struct ConsoleSettings {
  // How long a status, workers or activity document is served to every client
  // before it is read again.
  std::chrono::milliseconds snapshot_ttl{2000};
  // How long one job lookup may walk the queues.
  std::chrono::milliseconds lookup_budget{5000};
  // Reads that walk a whole queue, at once.
  int max_scans = 2;
};

class Console : public HttpHandler {
 public:
  // Reads `options` (Redis, DATABASE_URL, MINIO_BUCKET, WEB_*); connects
  // lazily, on the first request that needs a service.
  explicit Console(const config::Options& options, ConsoleSettings settings = {});
  ~Console() override;
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  std::optional<HttpResponse> Quick(const HttpRequest& request) override;
  HttpResponse Handle(const HttpRequest& request) override;
  HttpResponse Refused(int status, const std::string& reason) override;

 private:
  // One thread's connections to Redis.
  struct Readers {
    explicit Readers(const config::RedisAddress& redis);
    queue::QueueAdmin admin;
    queue::FleetStats fleet;
    queue::JobFinder finder;
    queue::BoxPauses pauses;
  };
  class ReadersLease;
  struct Snapshot {
    Mutex refresh;  // one reader at a time; the others then take its result
    Mutex mu;
    std::optional<report::Json> value GUARDED_BY(mu);
    std::chrono::steady_clock::time_point taken GUARDED_BY(mu);
  };

  // What a request asks for, once routed and let through.
  struct Work;
  // Routes and checks a request: a response (a page, an asset, a refusal),
  // or the API work it asks for.
  struct Decision;
  Decision Decide(const HttpRequest& request);
  // The same for a request to change something (requeue, purge, pause).
  Decision DecideChange(const HttpRequest& request, const std::string& path, const Caller& caller);
  HttpResponse Run(const Work& work, const HttpRequest& request);

  HttpResponse Page() const;
  HttpResponse LoginPage(int status, const std::string& next, const std::string& message) const;
  HttpResponse Login(const HttpRequest& request);
  HttpResponse Logout(const HttpRequest& request, const Caller& caller);
  HttpResponse Session(const Caller& caller) const;

  // The snapshot's document, read again with `read` when older than the TTL.
  Result<report::Json> Cached(Snapshot& snapshot,
                              const std::function<Result<report::Json>()>& read);
  void Invalidate();
  std::unique_ptr<Readers> TakeReaders();
  void GiveBack(std::unique_ptr<Readers> readers);

  const config::Options options_;
  const ConsoleSettings settings_;
  AccessControl access_;
  std::unique_ptr<catalog::PgCatalog> catalog_;  // null without DATABASE_URL
  std::string shell_;                            // index.html with the base path in

  Mutex readers_mu_;
  std::vector<std::unique_ptr<Readers>> idle_readers_ GUARDED_BY(readers_mu_);

  Snapshot status_;
  Snapshot workers_;
  Mutex activity_mu_;
  std::map<int, std::unique_ptr<Snapshot>> activity_ GUARDED_BY(activity_mu_);

  std::atomic<int> scans_{0};
  std::atomic<int> handling_{0};  // Handle() calls under way
};

// `text` with &, <, >, " and ' as character references.
std::string HtmlEscape(std::string_view text);

}  // namespace media_sync::web
