// `media-sync boxes`: the storage boxes as media-sync sees them (`list`),
// a box proven step by step before traffic goes to it (`check`,
// s3/box_check.h), and a box paused and resumed for every worker (`pause`,
// `resume`, queue/box_pauses.h).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "catalog/pg_box_catalog.h"
#include "catalog/pg_catalog.h"
#include "cli/command.h"
#include "core/job.h"
#include "queue/box_pauses.h"
#include "queue/fleet_stats.h"
#include "s3/box_check.h"
#include "util/human_bytes.h"
#include "worker/box_registry.h"

namespace media_sync::cli {
namespace {

using Json = nlohmann::ordered_json;

// The name `boxes` commands give MINIO_ENDPOINT, where jobs without a box go.
constexpr std::string_view kDefaultBox = "default";

struct ListFlags {
  bool json = false;
  bool objects = false;
};

struct PauseFlags {
  std::string box;
  std::string reason = "paused by an operator";
};

struct CheckFlags {
  std::string box;
  std::string endpoint;
  int timeout_seconds = 10;
  bool no_create_bucket = false;
};

std::string DefaultEndpoint(const config::Options& options) {
  return std::string(options.s3.secure ? "https://" : "http://") + options.s3.endpoint;
}

int List(const config::Options& options, const ListFlags& flags) {
  if (auto status = options.RequireDatabase(); !status) return ConfigError(status.error());
  catalog::PgCatalog catalog(options.database_conninfo, {});
  auto usage = catalog.BoxesUsage();
  if (!usage) return Failed("boxes list", usage.error());
  std::map<std::string, catalog::BoxCounters> counted;
  if (flags.objects) {
    catalog::PgBoxCatalog boxes(options.database_conninfo, 1);
    auto counters = boxes.CheckCounters({});
    if (!counters) return Failed("boxes list", counters.error());
    for (auto& box : *counters) counted[box.box] = box;
  }
  // What the workers last reported of each box; a box none has used yet is
  // "unknown". A listing without Redis still shows the catalog's side.
  std::map<std::string, queue::BoxReport> reports;
  queue::FleetStats fleet(options.redis);
  auto reported = fleet.BoxReports();
  if (reported) {
    for (auto& report : *reported) reports[report.box] = report;
  } else {
    std::fprintf(stderr, "media-sync: boxes list: states unknown: %s\n",
                 reported.error().message.c_str());
  }

  queue::BoxPauses pauses(options.redis);
  auto paused = pauses.List();
  if (!paused) {
    std::fprintf(stderr, "media-sync: boxes list: pauses unknown: %s\n",
                 paused.error().message.c_str());
  }

  Json out = Json::array();
  for (const catalog::PgCatalog::BoxUsage& box : *usage) {
    // BoxesUsage names MINIO_ENDPOINT's rows (those without a box) "".
    const bool is_default = box.id.empty();
    Json entry{{"box", is_default ? std::string(kDefaultBox) : box.id},
               {"endpoint", is_default ? DefaultEndpoint(options) : box.endpoint}};
    auto report = reports.find(box.id);
    if (report == reports.end()) {
      entry["state"] = "unknown";
    } else {
      entry["state"] = report->second.up ? "up" : "down";
      entry["error"] = report->second.error;
      entry["reported_by"] = report->second.worker;
      entry["reported_at"] = report->second.reported_at;
    }
    if (paused) {
      auto pause = paused->find(box.id);
      entry["paused"] = pause != paused->end();
      if (pause != paused->end()) {
        entry["pause"] = Json{
            {"reason", pause->second.reason}, {"by", pause->second.by}, {"at", pause->second.at}};
      }
    }
    entry["used_bytes"] = box.used_bytes;
    entry["reserved_bytes"] = box.reserved_bytes;
    entry["unsynced_rows"] = box.unsynced_rows;
    if (flags.objects && !is_default) entry["objects"] = counted[box.id].synced_rows;
    out.push_back(std::move(entry));
  }
  if (flags.json) {
    std::printf("%s\n", out.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    return kExitOk;
  }
  std::printf("%-16s %-8s %-6s %-36s %10s %10s %9s%s\n", "ID", "STATE", "PAUSED", "ENDPOINT",
              "USED", "RESERVED", "UNSYNCED", flags.objects ? "   OBJECTS" : "");
  for (const Json& box : out) {
    std::string objects;
    if (flags.objects) {
      objects = box.contains("objects") ? std::to_string(box["objects"].get<int64_t>()) : "-";
    }
    std::printf("%-16s %-8s %-36s %10s %10s %9lld%s%s\n", box["box"].get<std::string>().c_str(),
                box["state"].get<std::string>().c_str(), box["endpoint"].get<std::string>().c_str(),
                HumanBytes(static_cast<double>(box["used_bytes"].get<int64_t>())).c_str(),
                HumanBytes(static_cast<double>(box["reserved_bytes"].get<int64_t>())).c_str(),
                static_cast<long long>(box["unsynced_rows"].get<int64_t>()),
                flags.objects ? "   " : "", objects.c_str());
    if (box.contains("error") && !box["error"].get<std::string>().empty()) {
      std::printf("    %s\n", box["error"].get<std::string>().c_str());
    }
    if (box.contains("pause")) {
      std::printf("    paused by %s at %s: %s\n", box["pause"]["by"].get<std::string>().c_str(),
                  box["pause"]["at"].get<std::string>().c_str(),
                  box["pause"]["reason"].get<std::string>().c_str());
    }
  }
  return kExitOk;
}

// The name a pause is kept under: "" for MINIO_ENDPOINT ("default", unless
// a storage box has that id), the box's id otherwise. kInput for a box the
// catalog does not have.
Result<std::string> PauseName(const config::Options& options, const std::string& box) {
  if (auto status = options.RequireDatabase(); !status) return status.error();
  catalog::PgBoxCatalog catalog(options.database_conninfo, 1);
  auto boxes = catalog.Boxes();
  if (!boxes) return boxes.error();
  for (const auto& [id, endpoint] : *boxes) {
    if (id == box) return box;
  }
  if (box == kDefaultBox) return std::string();
  return Error::Input("no storage box " + box +
                      " in storage_boxes (\"default\" is MINIO_ENDPOINT)");
}

// user@host of the operator, for the record.
std::string Operator() {
  const char* user = std::getenv("USER");
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return std::string(user != nullptr && *user != '\0' ? user : "unknown") + "@" +
         (host[0] != '\0' ? host : "unknown");
}

int Pause(const config::Options& options, const PauseFlags& flags) {
  auto name = PauseName(options, flags.box);
  if (!name) {
    if (name.error().kind == ErrorKind::kInput) {
      std::fprintf(stderr, "media-sync: boxes pause: %s\n", name.error().message.c_str());
      return kExitUsage;
    }
    if (name.error().kind == ErrorKind::kConfiguration) return ConfigError(name.error());
    return Failed("boxes pause", name.error());
  }
  queue::BoxPauses pauses(options.redis);
  auto paused = pauses.Pause(
      *name,
      queue::BoxPause{flags.reason, Operator(), IsoTimestamp(std::chrono::system_clock::now())});
  if (!paused) return Failed("boxes pause", paused.error());
  std::printf("box %s %s: %s\n", flags.box.c_str(), *paused ? "paused" : "still paused, reason now",
              flags.reason.c_str());
  std::printf(
      "every worker defers its jobs from its next check (within 5 s), no attempt counted; "
      "`media-sync boxes resume %s` lets them go\n",
      flags.box.c_str());
  return kExitOk;
}

int Resume(const config::Options& options, const PauseFlags& flags) {
  // A box removed from the catalog while paused can still be resumed.
  std::string name = flags.box == kDefaultBox ? std::string() : flags.box;
  queue::BoxPauses pauses(options.redis);
  auto listed = pauses.List();
  if (!listed) return Failed("boxes resume", listed.error());
  if (listed->count(flags.box) > 0) name = flags.box;  // a box named "default" itself
  auto resumed = pauses.Resume(name);
  if (!resumed) return Failed("boxes resume", resumed.error());
  if (!*resumed) {
    std::printf("box %s was not paused: nothing to do\n", flags.box.c_str());
    return kExitOk;
  }
  std::printf(
      "box %s resumed: every worker takes its jobs again from its next check (within "
      "5 s); jobs deferred meanwhile are due within 30 s\n",
      flags.box.c_str());
  return kExitOk;
}

// One box to check: its name and settings.
struct Candidate {
  std::string name;
  s3::S3Options options;
};

int Check(const config::Options& options, const CheckFlags& flags) {
  std::vector<Candidate> candidates;
  if (!flags.endpoint.empty()) {
    auto box = worker::BoxRegistry::OptionsForEndpoint(options.s3, flags.endpoint);
    if (!box) {
      std::fprintf(stderr, "media-sync: boxes check: --endpoint: %s\n",
                   box.error().message.c_str());
      return kExitUsage;
    }
    candidates.push_back({flags.endpoint, *box});
  } else if (flags.box == kDefaultBox) {
    candidates.push_back({std::string(kDefaultBox), options.s3});
  } else {
    if (auto status = options.RequireDatabase(); !status) return ConfigError(status.error());
    catalog::PgBoxCatalog catalog(options.database_conninfo, 1);
    auto boxes = catalog.Boxes();
    if (!boxes) return Failed("boxes check", boxes.error());
    for (const auto& [id, endpoint] : *boxes) {
      if (!flags.box.empty() && id != flags.box) continue;
      auto box = worker::BoxRegistry::OptionsForEndpoint(options.s3, endpoint);
      if (!box) return Failed("boxes check", box.error().Wrap("storage box " + id));
      candidates.push_back({id, *box});
    }
    if (!flags.box.empty() && candidates.empty()) {
      std::fprintf(stderr,
                   "media-sync: boxes check: no storage box %s in storage_boxes (\"default\" is "
                   "MINIO_ENDPOINT; --endpoint checks a box not added yet)\n",
                   flags.box.c_str());
      return kExitUsage;
    }
    if (flags.box.empty()) candidates.push_back({std::string(kDefaultBox), options.s3});
  }

  s3::BoxCheckSettings settings;
  settings.timeout = std::chrono::seconds(flags.timeout_seconds);
  settings.create_bucket = !flags.no_create_bucket;
  int failed_boxes = 0;
  for (const Candidate& candidate : candidates) {
    std::printf("box %s: %s%s, bucket %s\n", candidate.name.c_str(),
                candidate.options.secure ? "https://" : "http://",
                candidate.options.endpoint.c_str(), candidate.options.bucket.c_str());
    std::fflush(stdout);
    std::vector<std::string> failed;
    s3::CheckBox(candidate.options, settings, [&](const s3::CheckStep& step) {
      std::printf("  %-8s %-12s %s\n", std::string(ToString(step.verdict)).c_str(),
                  step.name.c_str(), step.detail.c_str());
      std::fflush(stdout);
      if (step.verdict == s3::CheckStep::Verdict::kFail) failed.push_back(step.name);
    });
    if (failed.empty()) {
      std::printf("box %s: ready\n", candidate.name.c_str());
    } else {
      ++failed_boxes;
      std::string names;
      for (const std::string& name : failed) names += (names.empty() ? "" : ", ") + name;
      std::printf("box %s: NOT READY (failed: %s)\n", candidate.name.c_str(), names.c_str());
    }
    std::fflush(stdout);
  }
  return failed_boxes == 0 ? kExitOk : kExitFailed;
}

}  // namespace

Command AddBoxesCommand(CLI::App& app) {
  auto list_flags = std::make_shared<ListFlags>();
  auto check_flags = std::make_shared<CheckFlags>();
  auto pause_flags = std::make_shared<PauseFlags>();
  Command command;
  command.app = app.add_subcommand("boxes", "The storage boxes: list, check, pause, resume.");
  command.app->require_subcommand(1);

  CLI::App* list = command.app->add_subcommand(
      "list", "Each box: endpoint, state as last reported, used, reserved, unsynced rows.");
  list->add_flag("--json", list_flags->json, "Print one JSON array");
  list->add_flag("--objects", list_flags->objects,
                 "Also count each box's synced rows (its objects); reads every row");

  CLI::App* check = command.app->add_subcommand(
      "check",
      "Prove a box before traffic goes to it: name, TCP, TLS, clock, credentials, bucket, a "
      "probe object written, read back and deleted, what the server verifies.");
  check->add_option("box", check_flags->box,
                    "A storage_boxes id, or \"default\" (MINIO_ENDPOINT); every box when omitted");
  check->add_option("--endpoint", check_flags->endpoint,
                    "Check this endpoint (host:port or http(s)://host:port) with the current keys "
                    "and bucket instead: a box not added yet");
  check
      ->add_option("--timeout", check_flags->timeout_seconds,
                   "Seconds to wait for one reply (default 10)")
      ->check(CLI::Range(1, 600));
  check->add_flag("--no-create-bucket", check_flags->no_create_bucket,
                  "Report a missing bucket instead of creating it");
  check->footer(
      "One line per step: ok, warn, FAIL or skipped, and why. Exit code 0 when no step\n"
      "failed (warnings included), 1 otherwise.\n"
      "Examples:\n"
      "  media-sync boxes check box-c\n"
      "  media-sync boxes check --endpoint https://minio-c.example:9000");

  CLI::App* pause = command.app->add_subcommand(
      "pause",
      "Stop every worker from sending jobs to a box (maintenance): they wait, no attempt "
      "counted, while the other boxes flow.");
  pause->add_option("box", pause_flags->box, "A storage_boxes id, or \"default\" (MINIO_ENDPOINT)")
      ->required();
  pause->add_option("--reason", pause_flags->reason,
                    "Why, shown by status, boxes list, the metrics and the workers' logs");
  pause->footer("Example:\n  media-sync boxes pause box-b --reason 'disk swap until 14:00'");
  CLI::App* resume = command.app->add_subcommand("resume", "Let a paused box's jobs go again.");
  resume->add_option("box", pause_flags->box, "The box paused")->required();

  command.run = [list, check, pause, resume, list_flags, check_flags,
                 pause_flags](const config::Options& options) {
    if (list->parsed()) return List(options, *list_flags);
    if (check->parsed()) return Check(options, *check_flags);
    if (pause->parsed()) return Pause(options, *pause_flags);
    if (resume->parsed()) return Resume(options, *pause_flags);
    return kExitUsage;
  };
  return command;
}

}  // namespace media_sync::cli
