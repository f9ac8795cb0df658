#include "queue/job_finder.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "queue/queue_keys.h"

namespace media_sync::queue {
namespace {

using Clock = std::chrono::steady_clock;

bool ContainsIgnoringCase(std::string_view text, std::string_view needle) {
  auto found =
      std::search(text.begin(), text.end(), needle.begin(), needle.end(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) ==
               std::tolower(static_cast<unsigned char>(b));
      });
  return found != text.end();
}

// The entry is a JSON object whose sha256 is `sha256` (lowercase). The text
// is searched first, so that only entries holding the digits are parsed.
bool IsJobOf(std::string_view payload, std::string_view sha256) {
  if (!ContainsIgnoringCase(payload, sha256)) return false;
  auto document = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!document.is_object()) return false;
  auto field = document.find("sha256");
  if (field == document.end() || !field->is_string()) return false;
  const auto& value = field->get_ref<const std::string&>();
  return value.size() == sha256.size() && ContainsIgnoringCase(value, sha256);
}

std::optional<std::chrono::system_clock::time_point> ScoreTime(std::string_view score) {
  double ms = 0;
  auto [end, error] = std::from_chars(score.data(), score.data() + score.size(), ms);
  // Anyone may write a score: one that is no time of the clock's range is none.
  if (error != std::errc() || !std::isfinite(ms) || std::abs(ms) > 9.0e15) return std::nullopt;
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(static_cast<int64_t>(ms)));
}

}  // namespace

std::string_view ToString(JobPlace::Where where) {
  switch (where) {
    case JobPlace::Where::kPending:
      return "pending";
    case JobPlace::Where::kDelayed:
      return "delayed";
    case JobPlace::Where::kProcessing:
      return "processing";
    case JobPlace::Where::kFailed:
      return "failed";
  }
  return "pending";
}

JobFinder::JobFinder(config::RedisAddress address, RedisOptions options)
    : connection_(std::move(address), options) {}

Result<JobSearch> JobFinder::Find(std::string_view sha256_text, std::chrono::milliseconds budget) {
  std::string sha256(sha256_text);
  std::transform(sha256.begin(), sha256.end(), sha256.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto deadline = Clock::now() + budget;
  JobSearch search;
  auto out_of_time = [&] {
    if (Clock::now() < deadline) return false;
    search.complete = false;
    return true;
  };

  // Reads one list chunk by chunk; `from_head` reads pending from its right
  // end (served next), numbering from there.
  auto walk_list = [&](const std::string& key, JobPlace::Where where, const std::string& worker,
                       bool from_head) -> Status {
    for (int64_t start = 0;; start += kChunk) {
      if (out_of_time()) return Ok();
      std::string first = std::to_string(from_head ? -(start + kChunk) : start);
      std::string last = std::to_string(from_head ? -(start + 1) : start + kChunk - 1);
      auto reply = connection_.Command({"LRANGE", key, first, last});
      if (!reply) return reply.error();
      ReplyView view = reply->view();
      const auto size = static_cast<int64_t>(view.Size());
      search.entries_read += size;
      for (int64_t i = 0; i < size; ++i) {
        std::string_view payload = view[static_cast<size_t>(i)].String();
        if (!IsJobOf(payload, sha256)) continue;
        // LRANGE answers left to right: from the head, the last is next.
        int64_t position = from_head ? start + (size - 1 - i) : start + i;
        search.places.push_back(
            JobPlace{where, std::string(payload), position, std::nullopt, worker});
      }
      if (size < kChunk) return Ok();
    }
  };

  // Processing lists: the registered workers' and any other left behind.
  std::set<std::string> workers;
  auto members = connection_.Command({"SMEMBERS", kWorkersKey});
  if (!members) return members.error();
  for (size_t i = 0; i < members->view().Size(); ++i) {
    workers.insert(std::string(members->view()[i].String()));
  }
  if (Status scanned =
          connection_.Scan(std::string(kProcessingKeyPrefix) + "*",
                           [&](std::string_view key) {
                             workers.insert(std::string(key.substr(kProcessingKeyPrefix.size())));
                             return !out_of_time();
                           });
      !scanned) {
    return scanned.error();
  }
  for (const auto& worker : workers) {
    if (auto status = walk_list(ProcessingKey(worker), JobPlace::Where::kProcessing, worker, false);
        !status) {
      return status.error();
    }
  }

  // Delayed, by due time.
  for (int64_t start = 0; !out_of_time(); start += kChunk) {
    std::string first = std::to_string(start);
    std::string last = std::to_string(start + kChunk - 1);
    auto reply = connection_.Command({"ZRANGE", kDelayedKey, first, last, "WITHSCORES"});
    if (!reply) return reply.error();
    ReplyView view = reply->view();
    const auto size = static_cast<int64_t>(view.Size() / 2);
    search.entries_read += size;
    for (int64_t i = 0; i < size; ++i) {
      std::string_view payload = view[static_cast<size_t>(2 * i)].String();
      if (!IsJobOf(payload, sha256)) continue;
      search.places.push_back(JobPlace{JobPlace::Where::kDelayed, std::string(payload), start + i,
                                       ScoreTime(view[static_cast<size_t>(2 * i + 1)].String()),
                                       ""});
    }
    if (size < kChunk) break;
  }

  if (auto status = walk_list(std::string(kFailedKey), JobPlace::Where::kFailed, "", false);
      !status) {
    return status.error();
  }
  if (auto status = walk_list(std::string(kPendingKey), JobPlace::Where::kPending, "", true);
      !status) {
    return status.error();
  }
  return search;
}

}  // namespace media_sync::queue
