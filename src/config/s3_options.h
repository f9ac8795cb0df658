// Settings of one S3 client (one storage box). Filled by config::LoadOptions
// from the environment; the endpoint is replaced per storage box. The type
// belongs to the S3 adapter (namespace s3) but lives with the rest of the
// configuration, so that config/ depends on no adapter.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace media_sync::s3 {

struct S3Options {
  std::string endpoint =
      "localhost:9000";  // host:port (MINIO_ENDPOINT or storage_boxes.minio_endpoint)
  bool secure = false;   // MINIO_SECURE: https
  std::string access_key = "minioadmin";  // MINIO_ACCESS_KEY
  std::string secret_key = "minioadmin";  // MINIO_SECRET_KEY (never logged)
  std::string bucket = "osint-media";     // MINIO_BUCKET
  std::string region = "us-east-1";       // MINIO_REGION
  std::string ca_file;                    // MINIO_CA_FILE: PEM bundle; empty = system CAs

  std::chrono::milliseconds connect_timeout{5000};  // S3_CONNECT_TIMEOUT_SECONDS
  // A transfer slower than low_speed_limit bytes/s for low_speed_time is
  // abandoned as an outage (detects a box that accepts but never answers).
  std::chrono::seconds low_speed_time{20};  // S3_LOW_SPEED_SECONDS
  int64_t low_speed_limit = 1;              // bytes per second

  // S3_MULTIPART_THRESHOLD: files above use multipart; files above one part
  // and up to this (at most 5 GiB) go as one PutObject streamed from the
  // file. Unset, it depends on the box (MultipartThreshold): on a box whose
  // server proves what it stored (it refuses a body that does not match the
  // signed payload hash or checksum) a file up to 5 GiB costs one request and
  // one pass over its bytes; elsewhere 128 MiB, measured on a local server:
  // one streamed PUT of 128 MiB files ran at 190 MB/s against 105 MB/s for
  // 8 MiB parts x 4. Set, it holds everywhere (a cut single PUT starts over;
  // multipart resumes part by part).
  std::optional<uint64_t> multipart_threshold;
  uint64_t MultipartThreshold(bool server_proves) const {
    return multipart_threshold.value_or(server_proves ? 5ull << 30 : 128ull << 20);
  }
  uint64_t part_size = 8ull << 20;           // S3_PART_SIZE: minimum; grown to fit 10,000 parts
  int part_parallelism = 4;                  // S3_PART_PARALLELISM: parts in flight per upload
  bool content_md5 = false;                  // S3_CONTENT_MD5: also send Content-MD5
  uint64_t buffer_pool_bytes = 32ull << 20;  // S3_BUFFER_POOL: all upload buffers of the process
  // SYNC_BANDWIDTH_LIMIT: bytes per second of all upload bodies of the
  // process together (every box, every job); 0 = no cap.
  uint64_t bandwidth_limit = 0;
};

}  // namespace media_sync::s3
