#include "audit/box_migrator.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "core/hash.h"
#include "queue/source_deletions.h"
#include "s3/s3_client.h"
#include "s3/s3_object_store.h"
#include "util/fd.h"

namespace media_sync::audit {
namespace {

constexpr int kPageRows = 1000;
constexpr size_t kFailuresKept = 100;
constexpr int64_t kDeletionBatch = 100;
// A source copy whose row's new box does not hold the object is kept this
// much longer (and the failure reported): it may be the last copy.
constexpr auto kKeepSuspectSource = std::chrono::hours(1);

// An unnamed file in `dir`: gone when closed, whatever kills the process.
Result<UniqueFd> TemporaryFile(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (fd) return fd;
  // Filesystems without O_TMPFILE: a named file, unlinked at once.
  std::string path = dir + "/media-sync-migrate-XXXXXX";
  fd = UniqueFd(::mkostemp(path.data(), O_CLOEXEC));
  if (!fd) {
    return Error::Outage("temporary file in " + dir + ": " + std::strerror(errno));
  }
  ::unlink(path.c_str());
  return fd;
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t written = ::write(fd, data, size);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    data += written;
    size -= static_cast<size_t>(written);
  }
  return true;
}

}  // namespace

BoxMigrator::BoxMigrator(catalog::PgBoxCatalog& catalog, config::RedisAddress redis,
                         std::map<std::string, s3::S3Options> boxes)
    : catalog_(catalog), redis_(std::move(redis)), boxes_(std::move(boxes)) {}

Result<MigrateReport> BoxMigrator::Run(const MigrateSettings& settings, const std::stop_token& stop,
                                       const Progress& progress) {
  if (settings.from == settings.to) return Error::Input("--from and --to name the same box");
  for (const std::string& box : {settings.from, settings.to}) {
    if (boxes_.count(box) == 0) return Error::Input("No storage box " + box + " in storage_boxes");
  }
  MigrateReport report;
  std::mutex mu;  // guards report, the first error, and the progress callback
  std::optional<Error> first_error;
  auto failed_row = [&](const catalog::StoredRow& row, const std::string& why) {
    std::lock_guard lock(mu);
    ++report.failed;
    if (report.failures.size() < kFailuresKept) {
      report.failures.push_back(row.sha256 + " " + row.s3_key + ": " + why);
    }
  };

  s3::S3Client source(boxes_.at(settings.from));
  std::unique_ptr<s3::S3ObjectStore> target;
  if (!settings.dry_run) {
    target = std::make_unique<s3::S3ObjectStore>(boxes_.at(settings.to));
    if (Status made = target->EnsureBucket(); !made) {
      return made.error().Wrap("storage box " + settings.to);
    }
  }

  // One row, in the order the header gives. An error stops the run; a
  // fault of this row's source is its own failure.
  auto move_one = [&](const catalog::StoredRow& row, queue::SourceDeletions& deletions) -> Status {
    const auto due = std::chrono::system_clock::now() + settings.delete_after;
    if (Status noted = deletions.Schedule({settings.from, row.s3_key, row.sha256}, due); !noted) {
      return noted;
    }
    auto file = TemporaryFile(settings.temp_dir);
    if (!file) return file.error();
    Hasher hasher;
    uint64_t size = 0;
    bool write_failed = false;
    auto read = source.GetObjectStreamed(
        row.s3_key,
        [&](const char* data, size_t n) {
          hasher.Update(data, n);
          size += n;
          write_failed = !WriteAll(file->get(), data, n);
          return !write_failed;
        },
        stop);
    if (write_failed) {
      return Error::Outage("temporary file in " + settings.temp_dir + ": " + std::strerror(errno));
    }
    if (!read) return read.error().Wrap("storage box " + settings.from);
    if (!read->has_value()) {
      failed_row(row, "no object on box " + settings.from + " (see media-sync audit)");
      return Ok();
    }
    const std::string content = hasher.FinishHex();
    if (size != row.file_size || content != row.sha256) {
      failed_row(row, "the object on box " + settings.from +
                          " is damaged: " + std::to_string(size) + " bytes hashing to " + content +
                          " (see media-sync audit)");
      return Ok();
    }
    auto uploaded = target->Upload(row.s3_key, file->get(), size, row.sha256, stop);
    if (!uploaded) {
      if (uploaded.error().IsJobFault()) {
        failed_row(row, "upload to box " + settings.to + ": " + uploaded.error().message);
        return Ok();
      }
      return uploaded.error().Wrap("storage box " + settings.to);
    }
    auto moved = catalog_.MoveRow(row.sha256, settings.from, settings.to);
    if (!moved) return moved.error();
    std::lock_guard lock(mu);
    if (*moved) {
      ++report.moved;
      report.moved_bytes += static_cast<int64_t>(size);
    } else {
      ++report.moved_meanwhile;
    }
    if (progress) progress(report, size);
    return Ok();
  };

  std::string after;
  std::atomic<int64_t> taken{0};
  while (!report.limit_reached) {
    if (stop.stop_requested()) return Error::Cancelled("migration stopped");
    auto page = catalog_.SyncedOfShardAfter(settings.from, after, kPageRows, settings.shard,
                                            settings.shards);
    if (!page) return page.error();
    if (page->empty()) break;
    after = page->back().sha256;
    if (settings.dry_run) {
      for (const catalog::StoredRow& row : *page) {
        if (settings.limit > 0 && report.rows_seen >= settings.limit) {
          report.limit_reached = true;
          break;
        }
        ++report.rows_seen;
        report.moved_bytes += static_cast<int64_t>(row.file_size);
      }
      continue;
    }
    std::atomic<size_t> next{0};
    auto work = [&] {
      queue::SourceDeletions deletions(redis_);
      while (true) {
        {
          std::lock_guard lock(mu);
          if (first_error) return;
        }
        size_t index = next++;
        if (index >= page->size()) return;
        if (settings.limit > 0 && taken++ >= settings.limit) {
          std::lock_guard lock(mu);
          report.limit_reached = true;
          return;
        }
        {
          std::lock_guard lock(mu);
          ++report.rows_seen;
        }
        Status moved = move_one((*page)[index], deletions);
        if (!moved) {
          std::lock_guard lock(mu);
          if (!first_error) first_error = moved.error();
          return;
        }
      }
    };
    {
      std::vector<std::jthread> threads;
      for (int i = 0; i < std::max(1, settings.concurrency); ++i) threads.emplace_back(work);
    }
    if (first_error) return *first_error;
  }
  if (settings.dry_run) return report;
  if (Status deleted = DeleteDueSources(report, stop); !deleted) return deleted.error();
  return report;
}

Status BoxMigrator::DeleteDueSources(MigrateReport& report, const std::stop_token& stop) {
  queue::SourceDeletions deletions(redis_);
  std::unordered_map<std::string, std::unique_ptr<s3::S3Client>> clients;
  auto client_of = [&](const std::string& box) -> s3::S3Client* {
    auto it = boxes_.find(box);
    if (it == boxes_.end()) return nullptr;
    auto& client = clients[box];
    if (!client) client = std::make_unique<s3::S3Client>(it->second);
    return client.get();
  };
  while (!stop.stop_requested()) {
    auto due = deletions.Due(std::chrono::system_clock::now(), kDeletionBatch);
    if (!due) return due.error();
    if (due->empty()) break;
    std::vector<std::string> sha256s;
    for (const queue::SourceCopy& copy : *due) sha256s.push_back(copy.sha256);
    auto rows = catalog_.RowsFor(sha256s);
    if (!rows) return rows.error();
    std::unordered_map<std::string, catalog::StoredRow> by_sha256;
    for (catalog::StoredRow& row : *rows) by_sha256[row.sha256] = std::move(row);

    for (const queue::SourceCopy& copy : *due) {
      auto row = by_sha256.find(copy.sha256);
      if (row != by_sha256.end() && row->second.box == copy.box) {
        // The row still names this copy's box: it is the object in use.
        if (Status forgot = deletions.Forget(copy); !forgot) return forgot;
        ++report.sources_forgotten;
        continue;
      }
      s3::S3Client* holder = client_of(copy.box);
      if (holder == nullptr) {
        spdlog::warn(
            "migrate: {} on box {}: the box is no longer in storage_boxes; the copy "
            "stays there",
            copy.key, copy.box);
        if (Status forgot = deletions.Forget(copy); !forgot) return forgot;
        continue;
      }
      // The last check before the copy goes: the box the row names now
      // holds the object, right (it may be the only other copy).
      if (row != by_sha256.end() && row->second.box) {
        s3::S3Client* current = client_of(*row->second.box);
        auto info = current != nullptr ? current->HeadObject(row->second.s3_key, stop)
                                       : Result<std::optional<ObjectInfo>>(std::nullopt);
        if (!info) return info.error();
        const bool right = info->has_value() && (*info)->size == row->second.file_size &&
                           ((*info)->sha256.empty() || (*info)->sha256 == copy.sha256);
        if (!right) {
          spdlog::warn(
              "migrate: {} stays on box {}: box {} that its row names does not hold it "
              "right (see media-sync audit)",
              copy.key, copy.box, *row->second.box);
          if (Status later =
                  deletions.Schedule(copy, std::chrono::system_clock::now() + kKeepSuspectSource);
              !later) {
            return later;
          }
          continue;
        }
      }
      if (Status deleted = holder->DeleteObject(copy.key, stop); !deleted) {
        return deleted.error().Wrap("storage box " + copy.box);
      }
      if (Status forgot = deletions.Forget(copy); !forgot) return forgot;
      ++report.sources_deleted;
    }
  }
  auto waiting = deletions.Waiting();
  if (!waiting) return waiting.error();
  report.sources_waiting = waiting->count;
  report.first_due_ms = waiting->first_due_ms;
  return Ok();
}

}  // namespace media_sync::audit
