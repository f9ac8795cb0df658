#include "report/fleet_views.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <utility>
#include <vector>

#include "core/hash.h"
#include "core/job.h"
#include "report/failed_entries.h"
#include "report/status_report.h"

namespace media_sync::report {
namespace {

// Multipart uploads in progress read per call: far more than a fleet runs at once.
constexpr size_t kUploadsRead = 1000;

std::string MinuteTimestamp(int64_t minute) {
  return IsoTimestamp(std::chrono::system_clock::time_point(std::chrono::minutes(minute)));
}

uint64_t Sum(const std::map<std::string, uint64_t>& counts) {
  uint64_t total = 0;
  for (const auto& [label, count] : counts) total += count;
  return total;
}

// The upload of `key` among those in progress, as {parts, bytes_stored,
// part_size}, or null.
Json UploadOf(const std::vector<queue::UploadProgress>& uploads, const std::string& bucket,
              const std::string& key) {
  const std::string suffix = "/" + bucket + "/" + key;
  for (const auto& upload : uploads) {
    if (upload.name.size() > suffix.size() && upload.name.ends_with(suffix)) {
      return Json{{"parts", upload.parts},
                  {"bytes_stored", upload.bytes_stored},
                  {"part_size", upload.part_size}};
    }
  }
  return nullptr;
}

// A job's fields for the lookup: the payload's own JSON when it is an
// object, else its text.
Json PayloadJson(const std::string& payload) {
  Json document = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (document.is_object()) return document;
  return payload;
}

}  // namespace

Result<Json> CollectActivity(queue::FleetStats& fleet, int minutes,
                             std::chrono::system_clock::time_point now) {
  minutes = std::clamp(minutes, 1, kActivityMaxMinutes);
  auto series = fleet.Activity(minutes, now);
  if (!series) return series.error();
  Json points = Json::array();
  uint64_t files = 0;
  uint64_t bytes = 0;
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_class;  // failed, retried
  for (const auto& minute : *series) {
    files += minute.files;
    bytes += minute.bytes;
    for (const auto& [label, count] : minute.failed) by_class[label].first += count;
    for (const auto& [label, count] : minute.retried) by_class[label].second += count;
    points.push_back(Json{{"minute", MinuteTimestamp(minute.minute)},
                          {"files", minute.files},
                          {"bytes", minute.bytes},
                          {"failed", Sum(minute.failed)},
                          {"retried", Sum(minute.retried)}});
  }
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> classes(by_class.begin(),
                                                                             by_class.end());
  std::stable_sort(classes.begin(), classes.end(), [](const auto& a, const auto& b) {
    return a.second.first + a.second.second > b.second.first + b.second.second;
  });
  Json faults = Json::object();
  uint64_t failed = 0;
  uint64_t retried = 0;
  for (const auto& [label, counts] : classes) {
    faults[label] = Json{{"failed", counts.first}, {"retried", counts.second}};
    failed += counts.first;
    retried += counts.second;
  }
  return Json{{"span_minutes", minutes},
              {"minutes", std::move(points)},
              {"totals",
               Json{{"files", files}, {"bytes", bytes}, {"failed", failed}, {"retried", retried}}},
              {"faults_by_class", std::move(faults)}};
}

Result<Json> CollectWorkers(queue::QueueAdmin& admin, queue::FleetStats& fleet,
                            const std::string& bucket, int64_t jobs_per_worker) {
  auto counts = admin.Counts();
  if (!counts) return counts.error();
  std::vector<std::string> ids;
  for (const auto& [id, held] : counts->processing_by_worker) ids.push_back(id);
  auto leases = fleet.Leases(ids);
  if (!leases) return leases.error();
  std::vector<queue::UploadProgress> uploads;
  if (counts->processing > 0) {
    auto found = fleet.Uploads(kUploadsRead);
    if (!found) return found.error();
    uploads = std::move(*found);
  }
  Json workers = Json::array();
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string& id = ids[i];
    const auto& lease = (*leases)[i];
    Json jobs = Json::array();
    auto payloads = fleet.Held(id, jobs_per_worker);
    if (!payloads) return payloads.error();
    for (const auto& payload : *payloads) {
      Json job = JobSummary(payload);
      if (job.contains("key")) job["upload"] = UploadOf(uploads, bucket, job["key"]);
      jobs.push_back(std::move(job));
    }
    workers.push_back(Json{{"id", id},
                           {"live", lease.has_value()},
                           {"held", counts->processing_by_worker[id]},
                           {"host", lease ? Json(lease->host) : Json(nullptr)},
                           {"pid", lease ? Json(lease->pid) : Json(nullptr)},
                           {"started_at", lease ? Json(lease->started_at) : Json(nullptr)},
                           {"jobs", std::move(jobs)}});
  }
  return Json{{"live_workers", counts->live_workers.size()},
              {"processing", counts->processing},
              {"workers", std::move(workers)}};
}

Result<std::string> LookupSha256(std::string_view query) {
  std::string text(query);
  std::string lower = Lower(text);
  if (lower.size() == 64 && IsLowerHexSha256(lower)) return lower;
  // media/ab/cd/<sha256>[.ext], the content-addressed key.
  if (lower.starts_with("media/") && lower.size() >= 6 + 6 + 64) {
    std::string sha = lower.substr(12, 64);
    std::string rest = lower.substr(12 + 64);
    if (IsLowerHexSha256(sha) &&
        lower.compare(6, 6, sha.substr(0, 2) + "/" + sha.substr(2, 2) + "/") == 0 &&
        (rest.empty() || rest.front() == '.')) {
      return sha;
    }
  }
  return Error::Input(
      "not a sha256 (64 hexadecimal digits) nor an object key (media/ab/cd/<sha256>.<ext>)");
}

Result<Json> LookUpJob(const std::string& sha256, queue::JobFinder& finder,
                       queue::QueueAdmin& admin, queue::FleetStats& fleet,
                       catalog::PgCatalog* catalog, const std::string& bucket,
                       std::chrono::milliseconds budget) {
  auto search = finder.Find(sha256, budget);
  if (!search) return search.error();
  Json out{{"sha256", sha256}};

  std::vector<queue::UploadProgress> uploads;
  std::vector<std::string> live_workers;
  bool processing = std::any_of(search->places.begin(), search->places.end(), [](const auto& p) {
    return p.where == queue::JobPlace::Where::kProcessing;
  });
  if (processing) {
    auto counts = admin.Counts();
    if (!counts) return counts.error();
    live_workers = counts->live_workers;
    if (auto found = fleet.Uploads(kUploadsRead); found) uploads = std::move(*found);
  }

  Json places = Json::array();
  for (const auto& place : search->places) {
    Json job = PayloadJson(place.payload);
    Json item{{"where", queue::ToString(place.where)}, {"position", place.position}};
    switch (place.where) {
      case queue::JobPlace::Where::kDelayed:
        item["due"] = place.due ? Json(IsoTimestamp(*place.due)) : Json(nullptr);
        break;
      case queue::JobPlace::Where::kProcessing: {
        item["worker"] = place.worker;
        item["worker_live"] =
            std::binary_search(live_workers.begin(), live_workers.end(), place.worker);
        std::string key = job.is_object() && job.contains("s3_key") && job["s3_key"].is_string()
                              ? job["s3_key"].get<std::string>()
                              : std::string();
        item["upload"] = key.empty() ? Json(nullptr) : UploadOf(uploads, bucket, key);
        break;
      }
      case queue::JobPlace::Where::kFailed:
        for (const char* field : {"failed_at", "attempts", "error"}) {
          item[field] = job.is_object() && job.contains(field) ? job[field] : Json(nullptr);
        }
        item["id"] = FailedEntryId(place.payload);
        break;
      case queue::JobPlace::Where::kPending:
        break;
    }
    item["job"] = std::move(job);
    places.push_back(std::move(item));
  }
  out["places"] = std::move(places);
  out["searched"] = Json{{"entries", search->entries_read}, {"complete", search->complete}};

  out["row"] = nullptr;
  if (catalog != nullptr) {
    auto row = catalog->FindRow(sha256);
    if (!row) {
      out["database_error"] = row.error().message;
    } else if (row->has_value()) {
      const auto& r = **row;
      out["row"] =
          Json{{"sha256", r.sha256},
               {"s3_key", r.s3_key},
               {"file_size", r.file_size},
               {"storage_box_id", r.storage_box_id ? Json(*r.storage_box_id) : Json(nullptr)},
               {"created_at", r.created_at},
               {"synced_at", r.synced_at ? Json(*r.synced_at) : Json(nullptr)}};
    }
  }

  // The sum of it: where the file is now, the most advanced place first.
  auto in = [&out](std::string_view where) {
    return std::any_of(out["places"].begin(), out["places"].end(),
                       [&](const Json& place) { return place["where"] == where; });
  };
  std::string state = "unknown";
  if (out["row"].is_object() && !out["row"]["synced_at"].is_null()) {
    state = "synced";
  } else if (in("processing")) {
    state = "processing";
  } else if (in("failed")) {
    state = "failed";
  } else if (in("delayed")) {
    state = "delayed";
  } else if (in("pending")) {
    state = "pending";
  } else if (out["row"].is_object()) {
    state = "unsynced";
  }
  out["state"] = state;
  return out;
}

}  // namespace media_sync::report
