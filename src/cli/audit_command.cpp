// `media-sync audit`: compares the catalog with what the storage boxes hold
// (worker/storage_audit.h) and, with --repair, sets right what it can.
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "audit/storage_audit.h"
#include "buffer/local_buffer.h"
#include "catalog/pg_box_catalog.h"
#include "cli/command.h"

namespace media_sync::cli {
namespace {

using Json = nlohmann::ordered_json;

// Problems kept for --json; the counts stay exact beyond it.
constexpr size_t kJsonProblemsKept = 10000;

struct AuditFlags {
  std::string box;
  bool deep = false;
  bool repair = false;
  bool delete_orphans = false;
  bool json = false;
  bool restart = false;
};

std::string BoxText(const std::string& box) { return box.empty() ? "(default)" : box; }

void PrintProblem(const audit::AuditProblem& problem) {
  std::printf("%-13s %-12s %-64s  %s  %s%s\n", std::string(ToString(problem.kind)).c_str(),
              BoxText(problem.box).c_str(), problem.sha256.empty() ? "-" : problem.sha256.c_str(),
              problem.key.empty() ? "-" : problem.key.c_str(), problem.detail.c_str(),
              problem.action.empty() ? "" : ("  [" + problem.action + "]").c_str());
  std::fflush(stdout);
}

Json ProblemJson(const audit::AuditProblem& problem) {
  return Json{{"class", ToString(problem.kind)}, {"box", problem.box},
              {"sha256", problem.sha256},        {"key", problem.key},
              {"detail", problem.detail},        {"action", problem.action},
              {"fixed", problem.fixed}};
}

// One entry per box: its rows checked and problems (from the target holding
// it) beside its counters.
Json BoxesJson(const audit::AuditReport& report) {
  std::map<std::string, Json> boxes;
  for (const auto& target : report.targets) {
    for (const auto& [box, tally] : target.boxes) {
      boxes[box] = Json{{"box", box},
                        {"bucket", target.name},
                        {"rows", tally.rows},
                        {"missing", tally.missing},
                        {"damaged", tally.damaged}};
    }
  }
  for (const auto& counters : report.counters) {
    Json& box = boxes[counters.box];
    if (!box.contains("box")) {
      box = Json{{"box", counters.box}, {"rows", 0}, {"missing", 0}, {"damaged", 0}};
    }
    box["used_bytes"] = counters.used_bytes;
    box["synced_bytes"] = counters.synced_bytes;
    box["reserved_bytes"] = counters.reserved_bytes;
    box["unsynced_bytes"] = counters.unsynced_bytes;
    box["counters_drifted"] = counters.Drifted();
  }
  Json out = Json::array();
  for (auto& [name, box] : boxes) out.push_back(std::move(box));
  return out;
}

void PrintSummary(const audit::AuditReport& report, const Json& boxes) {
  for (const Json& box : boxes) {
    std::string line = "box " + BoxText(box["box"].get<std::string>()) + ": " +
                       std::to_string(box["rows"].get<int64_t>()) + " synced rows, " +
                       std::to_string(box["missing"].get<int64_t>()) + " missing, " +
                       std::to_string(box["damaged"].get<int64_t>()) + " damaged";
    if (box.contains("used_bytes")) {
      line += box["counters_drifted"].get<bool>() ? "; counters drifted" : "; counters right";
      line += " (used_bytes " + std::to_string(box["used_bytes"].get<int64_t>()) +
              ", reserved_bytes " + std::to_string(box["reserved_bytes"].get<int64_t>()) + ")";
    }
    std::printf("%s\n", line.c_str());
  }
  for (const auto& target : report.targets) {
    std::printf("bucket %s (%s): %lld rows and objects checked, %lld orphans%s\n",
                target.name.c_str(), target.label.c_str(), static_cast<long long>(target.objects),
                static_cast<long long>(target.orphans),
                target.done_earlier ? " (done by an earlier run of this kind)"
                : target.resumed    ? " (continued an unfinished run)"
                                    : "");
  }
  if (report.Found() == 0) {
    std::printf("audit: nothing wrong\n");
  } else {
    std::printf(
        "audit: %lld problems (%lld missing, %lld damaged, %lld orphans, %lld counter "
        "drifts), %lld fixed, %lld remain\n",
        static_cast<long long>(report.Found()),
        static_cast<long long>(report.found.count(audit::ProblemClass::kMissing)
                                   ? report.found.at(audit::ProblemClass::kMissing)
                                   : 0),
        static_cast<long long>(report.found.count(audit::ProblemClass::kDamaged)
                                   ? report.found.at(audit::ProblemClass::kDamaged)
                                   : 0),
        static_cast<long long>(report.found.count(audit::ProblemClass::kOrphan)
                                   ? report.found.at(audit::ProblemClass::kOrphan)
                                   : 0),
        static_cast<long long>(report.found.count(audit::ProblemClass::kCounterDrift)
                                   ? report.found.at(audit::ProblemClass::kCounterDrift)
                                   : 0),
        static_cast<long long>(report.fixed), static_cast<long long>(report.Remaining()));
  }
}

int Audit(const config::Options& options, const AuditFlags& flags) {
  if (flags.delete_orphans && !flags.repair) {
    std::fprintf(stderr, "media-sync: audit: --delete-orphans goes with --repair\n");
    return kExitUsage;
  }
  if (auto status = options.RequireDatabase(); !status) return ConfigError(status.error());
  // The buffer is looked in only to repair: a missing object is uploaded
  // again from its local copy.
  std::optional<buffer::LocalBuffer> buffer;
  if (flags.repair) {
    auto created = buffer::LocalBuffer::Create(options.buffer_path);
    if (!created) return ConfigError(created.error().Wrap("MEDIA_BUFFER_PATH"));
    buffer.emplace(std::move(*created));
  }
  catalog::PgBoxCatalog catalog(options.database_conninfo);
  auto boxes = catalog.Boxes();
  if (!boxes) return Failed("audit", boxes.error());
  auto without_box = catalog.AnyRowWithoutBox();
  if (!without_box) return Failed("audit", without_box.error());
  std::optional<std::string> only_box;
  if (!flags.box.empty()) only_box = flags.box;
  auto targets = audit::StorageAuditor::PlanTargets(options.s3, *boxes, *without_box, only_box);
  if (!targets) {
    if (targets.error().kind == ErrorKind::kInput) {
      std::fprintf(stderr, "media-sync: audit: %s\n", targets.error().message.c_str());
      return kExitUsage;
    }
    return Failed("audit", targets.error());
  }
  std::vector<std::string> counter_boxes;
  for (const auto& [id, endpoint] : *boxes) {
    if (!only_box || id == *only_box) counter_boxes.push_back(id);
  }

  Json problems = Json::array();
  bool truncated = false;
  audit::StorageAuditor::Hooks hooks;
  hooks.on_problem = [&](const audit::AuditProblem& problem) {
    if (!flags.json) {
      PrintProblem(problem);
    } else if (problems.size() < kJsonProblemsKept) {
      problems.push_back(ProblemJson(problem));
    } else {
      truncated = true;
    }
  };
  audit::StorageAuditor auditor(catalog, options.redis, buffer ? &*buffer : nullptr, hooks);
  audit::AuditSettings settings;
  settings.deep = flags.deep;
  settings.repair = flags.repair;
  settings.delete_orphans = flags.delete_orphans;
  settings.resume = !flags.restart;
  auto report = auditor.Run(*targets, counter_boxes, settings, {});
  if (!report) {
    Error error = report.error();
    error.message += " (the position reached is kept: run the same audit again to continue)";
    return Failed("audit", error);
  }

  Json box_summaries = BoxesJson(*report);
  if (flags.json) {
    Json found = Json::object();
    for (audit::ProblemClass kind : audit::kProblemClasses) {
      auto it = report->found.find(kind);
      found[std::string(ToString(kind))] = it == report->found.end() ? 0 : it->second;
    }
    Json buckets = Json::array();
    for (const auto& target : report->targets) {
      buckets.push_back(Json{{"bucket", target.name},
                             {"boxes", target.label},
                             {"checked", target.objects},
                             {"orphans", target.orphans},
                             {"resumed", target.resumed || target.done_earlier}});
    }
    Json out{{"clean", report->Remaining() == 0},
             {"found", std::move(found)},
             {"fixed", report->fixed},
             {"remaining", report->Remaining()},
             {"boxes", std::move(box_summaries)},
             {"buckets", std::move(buckets)},
             {"problems", std::move(problems)},
             {"problems_truncated", truncated}};
    std::printf("%s\n", out.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
  } else {
    PrintSummary(*report, box_summaries);
  }
  return report->Remaining() == 0 ? kExitOk : kExitFailed;
}

}  // namespace

Command AddAuditCommand(CLI::App& app) {
  auto flags = std::make_shared<AuditFlags>();
  Command command;
  command.app = app.add_subcommand(
      "audit",
      "Compare the catalog with the storage boxes: missing, damaged and orphaned objects, "
      "drifted counters; --repair sets right what it can.");
  command.app->add_option("--box", flags->box, "Only this storage box (and its bucket)");
  command.app->add_flag("--deep", flags->deep,
                        "Read every object back and hash it (bandwidth capped by "
                        "SYNC_BANDWIDTH_LIMIT)");
  command.app->add_flag("--repair", flags->repair,
                        "Upload again, through the job queue, what the buffer still holds; set "
                        "drifted counters right; list orphans");
  command.app->add_flag("--delete-orphans", flags->delete_orphans,
                        "With --repair: delete objects no row names");
  command.app->add_flag("--json", flags->json, "Print one JSON document");
  command.app->add_flag("--restart", flags->restart,
                        "Start over instead of continuing an unfinished run of the same kind");
  command.app->footer(
      "Each problem is one line: class, box, sha256, key, what is wrong [what was done].\n"
      "Exit code 0 when nothing is wrong (or everything was set right), 1 when problems\n"
      "remain or the audit could not finish (run it again: it continues where it stopped).\n"
      "Examples:\n"
      "  media-sync audit\n"
      "  media-sync audit --box box-a --deep\n"
      "  media-sync audit --repair --delete-orphans");
  command.run = [flags](const config::Options& options) { return Audit(options, *flags); };
  return command;
}

}  // namespace media_sync::cli
