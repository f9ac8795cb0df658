#include "report/failed_entries.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <utility>

#include "core/hash.h"

namespace media_sync::report {

using Json = nlohmann::ordered_json;

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string FailedQueueEntry::Text(const char* field) const {
  if (!is_object()) return "";
  auto it = document.find(field);
  if (it == document.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

bool FailedQueueEntry::is_job() const {
  return is_object() && !document.contains("raw") && !document.contains("raw_base64");
}

FailedQueueEntry MakeFailedQueueEntry(int64_t index, std::string raw) {
  FailedQueueEntry entry;
  entry.index = index;
  entry.document = Json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (!entry.document.is_object()) entry.document = Json::value_t::discarded;
  entry.raw = std::move(raw);
  return entry;
}

std::string FailedFilter::Describe() const {
  std::string text;
  if (!grep.empty()) text += " --grep '" + grep + "'";
  if (!box.empty()) text += " --box '" + box + "'";
  return text;
}

bool Matches(const FailedQueueEntry& entry, const FailedFilter& filter) {
  if (!filter.box.empty() && entry.Text("storage_box_id") != filter.box) return false;
  if (filter.grep.empty()) return true;
  const std::string needle = Lower(filter.grep);
  std::vector<std::string> fields = {entry.Text("error"), entry.Text("s3_key"),
                                     entry.Text("sha256"), entry.Text("local_path")};
  // What is known of an entry that is not a job: its kept payload.
  if (!entry.is_job()) fields.push_back(entry.is_object() ? entry.Text("raw") : entry.raw);
  return std::any_of(fields.begin(), fields.end(), [&](const std::string& field) {
    return Lower(field).find(needle) != std::string::npos;
  });
}

Status ScanFailed(queue::QueueAdmin& admin, const std::function<bool(FailedQueueEntry)>& visit) {
  for (int64_t start = 0;; start += kFailedScanChunk) {
    auto chunk = admin.ListFailed(start, kFailedScanChunk);
    if (!chunk) return chunk.error();
    for (size_t i = 0; i < chunk->size(); ++i) {
      if (!visit(MakeFailedQueueEntry(start + static_cast<int64_t>(i), std::move((*chunk)[i])))) {
        return Ok();
      }
    }
    if (static_cast<int64_t>(chunk->size()) < kFailedScanChunk) return Ok();
  }
}

Result<std::vector<FailedQueueEntry>> MatchingFailed(queue::QueueAdmin& admin,
                                                     const FailedFilter& filter) {
  std::vector<FailedQueueEntry> found;
  auto status = ScanFailed(admin, [&](FailedQueueEntry entry) {
    if (Matches(entry, filter)) found.push_back(std::move(entry));
    return true;
  });
  if (!status) return status.error();
  return found;
}

std::string FailedEntryId(std::string_view raw) { return Sha256Hex(raw).substr(0, 16); }

Json FailedEntryJson(const FailedQueueEntry& entry) {
  auto field = [&entry](const char* name) -> Json {
    if (!entry.is_object()) return nullptr;
    auto it = entry.document.find(name);
    return it == entry.document.end() ? Json(nullptr) : *it;
  };
  const char* kind = entry.is_job() ? "job" : (entry.is_object() ? "not_a_job" : "not_json");
  Json out{{"index", entry.index},
           {"id", FailedEntryId(entry.raw)},
           {"failed_at", field("failed_at")},
           {"attempts", field("attempts")},
           {"box", field("storage_box_id")},
           {"size", entry.is_job() ? field("file_size") : Json(nullptr)},
           {"error", field("error")},
           {"key", entry.is_job() ? field("s3_key") : Json(nullptr)},
           {"sha256", entry.is_job() ? field("sha256") : Json(nullptr)},
           {"kind", kind}};
  out["entry"] = entry.is_object() ? entry.document : Json(entry.raw);
  return out;
}

Result<Json> FailedPageJson(queue::QueueAdmin& admin, const FailedFilter& filter, int64_t offset,
                            int64_t limit) {
  auto total = admin.FailedLength();
  if (!total) return total.error();
  Json entries = Json::array();
  int64_t matching = *total;
  if (filter.empty()) {
    auto raw = admin.ListFailed(offset, limit);
    if (!raw) return raw.error();
    for (size_t i = 0; i < raw->size(); ++i) {
      entries.push_back(FailedEntryJson(
          MakeFailedQueueEntry(offset + static_cast<int64_t>(i), std::move((*raw)[i]))));
    }
  } else {
    matching = 0;
    auto status = ScanFailed(admin, [&](const FailedQueueEntry& entry) {
      if (!Matches(entry, filter)) return true;
      if (matching >= offset && matching < offset + limit) {
        entries.push_back(FailedEntryJson(entry));
      }
      ++matching;
      return true;
    });
    if (!status) return status.error();
  }
  return Json{{"total", *total},
              {"matching", matching},
              {"offset", offset},
              {"limit", limit},
              {"entries", std::move(entries)}};
}

Result<FailedSelection> SelectFailed(queue::QueueAdmin& admin, const std::vector<int64_t>& indexes,
                                     const std::vector<std::string>& ids) {
  FailedSelection selection;
  std::set<int64_t> asked;     // an index named twice is one entry
  std::set<int64_t> taken_at;  // indexes whose entry was taken where the page saw it
  // Slots whose entry moved: id -> slot in `found`, one per copy looked for.
  std::multimap<std::string, size_t> looked_for;
  std::vector<std::optional<FailedQueueEntry>> found(indexes.size());
  std::vector<bool> wanted(indexes.size(), false);
  for (size_t i = 0; i < indexes.size(); ++i) {
    if (!asked.insert(indexes[i]).second) continue;
    wanted[i] = true;
    const std::string* id = i < ids.size() && !ids[i].empty() ? &ids[i] : nullptr;
    auto raw = admin.FailedEntryAt(indexes[i]);
    if (!raw) return raw.error();
    if (raw->has_value() && (id == nullptr || FailedEntryId(**raw) == *id)) {
      found[i] = MakeFailedQueueEntry(indexes[i], std::move(**raw));
      taken_at.insert(indexes[i]);
    } else if (id != nullptr) {
      looked_for.emplace(*id, i);
    }
  }
  if (!looked_for.empty()) {
    auto status = ScanFailed(admin, [&](FailedQueueEntry entry) {
      auto it = looked_for.find(FailedEntryId(entry.raw));
      if (it != looked_for.end() && !taken_at.contains(entry.index)) {
        found[it->second] = std::move(entry);
        looked_for.erase(it);
      }
      return !looked_for.empty();
    });
    if (!status) return status.error();
  }
  for (size_t i = 0; i < found.size(); ++i) {
    if (!wanted[i]) continue;
    if (found[i]) {
      selection.entries.push_back(std::move(*found[i]));
    } else {
      ++selection.missing;
    }
  }
  return selection;
}

}  // namespace media_sync::report
