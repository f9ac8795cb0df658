// RedisUploadJournal: the UploadJournal beside the jobs in Redis. One hash
// per upload in progress,
//   media:sync:upload:<name>  {upload_id, part_size, <part number>: "<size> <etag>"}
// with a TTL of `retention` renewed by every write, so the record of an
// upload nobody continues expires when S3ObjectStore::SweepStaleUploads
// would abort the upload itself. Begin replaces a record in one command;
// RecordPart and Forget are compare-and-set scripts on the upload id, so an
// attempt that lost the record to a newer upload changes nothing.
//
// Thread-safety: thread-safe; calls share one connection under a mutex (a
// few short commands per part of 8 MiB or more).
// Errors: those of RedisConnection (kOutage, kConfiguration).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "config/urls.h"
#include "core/upload_journal.h"
#include "queue/redis_connection.h"
#include "util/mutex.h"

namespace media_sync::queue {

class RedisUploadJournal : public UploadJournal {
 public:
  RedisUploadJournal(config::RedisAddress address, RedisOptions options,
                     std::chrono::seconds retention);

  Result<std::optional<JournaledUpload>> Find(const std::string& name) override;
  Status Begin(const std::string& name, const std::string& upload_id, uint64_t part_size) override;
  Status RecordPart(const std::string& name, const std::string& upload_id,
                    const JournaledPart& part) override;
  Status Forget(const std::string& name, const std::string& upload_id) override;

  // media:sync:upload:<name>
  static std::string KeyOf(const std::string& name);

 private:
  Mutex mutex_;
  RedisConnection connection_ GUARDED_BY(mutex_);
  const std::chrono::seconds retention_;
};

}  // namespace media_sync::queue
