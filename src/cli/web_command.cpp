// `media-sync web`: the web console (web/console.h) on WEB_ADDRESS, its own
// process beside any number of workers, reading the same Redis and
// PostgreSQL. Runs until SIGTERM or SIGINT.
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX sigtimedwait, pthread_sigmask
#include <spdlog/spdlog.h>

#include <ctime>
#include <memory>

#include "cli/command.h"
#include "queue/queue_admin.h"
#include "web/console.h"
#include "web/http_server.h"

namespace media_sync::cli {
namespace {

int Web(const config::Options& options) {
  {
    // Bad credentials are the operator's to fix now; an outage only waits.
    queue::QueueAdmin admin(options.redis);
    if (auto connected = admin.Connect(); !connected) {
      if (connected.error().kind == ErrorKind::kConfiguration)
        return ConfigError(connected.error());
      spdlog::warn("Redis not reachable yet ({}); the console shows it until it is",
                   connected.error().message);
    }
  }
  web::Console console(options);
  auto server = web::HttpServer::Start(options.web_address, "WEB_ADDRESS", {}, console);
  if (!server) return ConfigError(server.error());
  spdlog::info("media-sync {} web console on {} (port {}), path {}/; reading: {}; changes: {}",
               MEDIA_SYNC_VERSION, options.web_address, (*server)->port(), options.web_base_path,
               options.web_read_token.empty() ? "open" : "needs a token",
               options.web_token.empty() ? "refused (WEB_TOKEN is not set)" : "need WEB_TOKEN");

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  while (true) {
    timespec tick{1, 0};
    int signal = sigtimedwait(&signals, nullptr, &tick);
    if (signal == SIGTERM || signal == SIGINT) break;
  }
  server->reset();  // stops serving; requests being handled finish first
  spdlog::info("web console stopped");
  return kExitOk;
}

}  // namespace

Command AddWebCommand(CLI::App& app) {
  Command command;
  command.app = app.add_subcommand(
      "web",
      "Serve the web console on WEB_ADDRESS: the fleet at a glance, the failed queue (requeue, "
      "purge), workers, boxes and job lookup, with a JSON API under /api/.");
  command.app->footer(
      "Reading needs no token unless WEB_READ_TOKEN is set; changes need WEB_TOKEN (without it\n"
      "the console is read-only). Behind a reverse proxy under a prefix, set WEB_BASE_PATH.\n"
      "Examples:\n"
      "  media-sync web                                  # http://127.0.0.1:9109/\n"
      "  WEB_TOKEN=$(openssl rand -hex 24) media-sync web");
  command.run = [](const config::Options& options) {
    // Only this thread takes the shutdown signals (sigtimedwait), so they
    // are blocked before any thread starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    return Web(options);
  };
  return command;
}

}  // namespace media_sync::cli
