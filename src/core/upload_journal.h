// Where a multipart upload in progress is written down, so that the next
// attempt at the same object, by this worker or any other, finds it and sends
// only the parts that are missing (see s3::S3ObjectStore). The real adapter is
// queue::RedisUploadJournal (beside the jobs in Redis); tests use an
// in-memory one.
//
// A record is named by the caller (the store names the endpoint, bucket and
// content-addressed key, so one record stands for one file's bytes on one
// box) and holds one upload id, the part size it was cut with, and the parts
// the server acknowledged: their number, size and ETag. A record is a hint,
// never a proof: the store checks every part it reuses against the local
// file before it completes the upload.
//
// Thread-safety: implementations are thread-safe (one journal serves every
// store of the process).
// Errors: kOutage when the journal cannot be reached. A journal that fails
// costs the resumption only, never the upload: callers log and go on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace media_sync {

struct JournaledPart {
  int part_number = 0;
  uint64_t size = 0;
  std::string etag;  // as the server answered the UploadPart, without quotes
};

struct JournaledUpload {
  std::string upload_id;
  uint64_t part_size = 0;
  std::vector<JournaledPart> parts;  // in ascending part_number
};

class UploadJournal {
 public:
  virtual ~UploadJournal() = default;

  // The upload recorded under name, or nullopt when there is none (never
  // begun, forgotten, or expired).
  virtual Result<std::optional<JournaledUpload>> Find(const std::string& name) = 0;
  // Records a new upload under name, replacing whatever was there (with its
  // parts). The record expires when no part was added for the journal's
  // retention, so one left by an abandoned upload goes away on its own.
  virtual Status Begin(const std::string& name, const std::string& upload_id,
                       uint64_t part_size) = 0;
  // Adds one acknowledged part, only while name still records upload_id
  // (another attempt may have begun a new upload meanwhile: then nothing).
  virtual Status RecordPart(const std::string& name, const std::string& upload_id,
                            const JournaledPart& part) = 0;
  // Removes the record, only while it is upload_id's.
  virtual Status Forget(const std::string& name, const std::string& upload_id) = 0;
};

}  // namespace media_sync
