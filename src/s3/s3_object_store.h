// The real ObjectStore: one S3 bucket behind one endpoint (a storage box).
//
// Upload guarantees that no byte sequence other than the file that hashes to
// the job's sha256 ever becomes the object under its key, even on servers
// that check nothing and keep truncated bodies (s3rver):
//   * files up to min(S3_PART_SIZE, S3_MULTIPART_THRESHOLD, pool capacity)
//     are read whole into a pooled buffer, hashed, compared, and only then
//     sent with PutObject from that same memory, signed with that hash;
//   * on a box whose server proves what it stores (DetectVerification: it
//     refuses a body that does not hash to the signed payload hash or to
//     x-amz-checksum-sha256, as MinIO and AWS S3 do), files above one part
//     and up to 5 GiB (S3_MULTIPART_THRESHOLD when set) go as one PutObject
//     signed with the job's sha256, which content addressing makes known
//     before a byte is read, and carrying it as x-amz-checksum-sha256 where
//     checked: the file is read once, hashed on its way out, and its last
//     bytes handed over only if that hash matches; the server's 200 proves
//     the object (it keeps nothing of a body it refused or that was cut).
//     One request, one pass, no HeadObject;
//   * elsewhere, files above one part and up to S3_MULTIPART_THRESHOLD go as one
//     PutObject streamed from the file at constant memory: the file is
//     hashed first (a lying job sends nothing), hashed again while it is
//     sent, and its last bytes are handed over only if that second hash
//     matches, so a file that changed in between never completes a request;
//   * larger files go multipart: each part is read once into a pooled buffer,
//     hashed and sent, the whole-file hash is computed over the parts in
//     order, and the last part is sent (or the upload completed) only after
//     the whole hash matched. A mismatch aborts the upload; it is never
//     completed, so nothing becomes visible;
//   * a multipart upload is resumable when the store has an UploadJournal
//     (see "Resuming" below); without one, any failure or a stop aborts it;
//   * the upload is known right once the server proved it (below).
//
// What proves an upload, per server (requests per file: one for a small
// file on MinIO, AWS S3, Ceph RGW and s3rver):
//   * a small file's PutObject carries If-None-Match: *, so no HeadObject
//     goes first: a server that honours it (AWS S3, MinIO, the strict
//     gateway) keeps an object already under key and answers 412, and one
//     HeadObject then tells whether that object is this file (kept, nothing
//     written: `already_stored`) or another one (replaced by a plain
//     PutObject). A server that ignores the condition (s3rver) stores the
//     same bytes again: harmless under a content-addressed key. Larger files
//     keep a HeadObject first, which saves sending them again;
//   * every PutObject is signed with the body's SHA-256, which strict servers
//     check (the gateway, MinIO, AWS), and carries Content-MD5 where the MD5
//     was taken (for a small file unless the server proves what it stores;
//     with S3_CONTENT_MD5 for the rest), which makes servers refuse a body
//     that differs;
//   * on a server that proves what it stores, its 200 to a PutObject signed
//     with the job's sha256 is the proof (kServerVerified);
//   * elsewhere, the answer's ETag equal to the MD5 of the bytes hashed on their way
//     out proves the stored body is those bytes (the single-part ETag is
//     the body's MD5 on MinIO, AWS without SSE-KMS, Ceph RGW and s3rver):
//     no HeadObject after. Where the ETag is missing or another value
//     (SSE-KMS, multipart, no MD5 taken), HeadObject must show the size and
//     x-amz-meta-sha256.
//
// A PutObject that failed part-way may leave a short body on a lenient
// server. It is removed only if HeadObject just showed it short, and with
// If-Match on that body's ETag, so a server that honours conditional deletes
// (AWS S3, ...) never removes a good object another worker stored in the
// meantime (a slow worker whose lease expired races the one now holding the
// job). A server that ignores If-Match may have removed such an object: when
// the delete left the key empty, the upload is made once more from this
// file (its bytes hashed again), so the good object is back before the call
// returns. Left open, on such servers only: the window of one round trip
// when the upload was stopped (shutdown) or the second upload fails too, or
// when this file changed under the upload (no good bytes to put back); each
// is logged with the key.
//
// Resuming (with an UploadJournal): the upload id, the part size and every
// part the server acknowledged (number, size, ETag) are recorded under the
// endpoint, bucket and key. Keys are content-addressed, so a record stands
// for one file's bytes. An upload cut by an outage, a stop (the shutdown's
// grace running out), or the death of its worker is left in place, not
// aborted, and the next Upload of the key, by any worker, continues it when
// its part size is the one these settings give this file: every part is
// read and hashed again in order (the whole-file SHA-256 still covers every
// byte before the last part is sent or the upload completed), a recorded
// part whose size matches and whose ETag is the MD5 of the local bytes at
// its range is not sent again, and any other part is sent (and recorded).
// The upload is then completed with the parts list this attempt checked, and
// proven by HeadObject as any multipart upload. An upload the server no
// longer knows (NoSuchUpload) is forgotten: the object it may have become is
// kept when identical, else a new upload starts. A file that does not match
// its sha256, cannot be read, or an error other than an outage or a stop
// aborts the upload and forgets its record; a record of another part size is
// aborted and replaced. Two workers continuing one upload (the first one's
// lease expired while it still ran) can only send the same bytes as the
// same part numbers, and each completes with parts it checked: the first
// completion wins, the second finds the upload gone and the object
// identical. Abandoned uploads: the record expires after the journal's
// retention, and SweepStaleUploads aborts uploads older than that on servers
// that list them (s3rver does not list, abort or list parts: its abandoned
// parts stay on its disk).
//
// Thread-safety: thread-safe; one store is shared by every job of its box.
// Ownership: borrows the BufferPool (it must outlive the store); shares the
// UploadJournal; does not own the fds passed to Upload.
// Errors: kOutage (retry later, not the job's fault), kConfiguration (keys,
// bucket, TLS), kJobRetryable ("Size mismatch: expected X, got Y", "SHA-256
// mismatch: expected X, got Y", content rejected by the server, failed
// verification), kJobPermanent (a sha256 that is not 64 lowercase hex
// digits; FaultClass::kTooLarge for a file whose parts, grown to stay within
// 10,000, would not fit in S3_BUFFER_POOL: the message names the size and the
// setting to raise), kCancelled (stop requested).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include "config/s3_options.h"
#include "core/object_store.h"
#include "core/upload_journal.h"
#include "s3/buffer_pool.h"
#include "s3/s3_client.h"
#include "util/mutex.h"

namespace media_sync::s3 {

class S3ObjectStore : public ObjectStore {
 public:
  // How an upload was known to be right (see the header comment).
  enum class Proof {
    kEtag,            // the PutObject's ETag is the MD5 of the bytes sent
    kHeadObject,      // HeadObject showed the size and x-amz-meta-sha256
    kAlreadyStored,   // an identical object was there: nothing written
    kServerVerified,  // a server that refuses other bytes accepted them
  };

  // What the box's server verifies of an upload's content (DetectVerification).
  struct Verification {
    // Refuses a body whose SHA-256 differs from the signed x-amz-content-sha256.
    bool payload_hash = false;
    // Refuses a body whose SHA-256 differs from x-amz-checksum-sha256.
    bool checksum_sha256 = false;
    bool Proves() const { return payload_hash || checksum_sha256; }
  };

  // Observation and fault-injection points for tests and metrics; called on
  // the uploading thread.
  struct Hooks {
    std::function<void(Proof)> on_proven;
    // Sees, and may change, the ETag a PutObject answered (as a server whose
    // ETags are not MD5s, AWS with SSE-KMS, would answer).
    std::function<void(std::string& etag)> on_put_answer;
    std::function<void(int part_number)> on_part_uploaded;
    // A resumed upload found `parts` parts (`bytes` bytes) stored and
    // matching the local file, and did not send them again.
    std::function<void(int parts, uint64_t bytes)> on_parts_reused;
    std::function<void(const std::string& upload_id)> on_multipart_aborted;
    // A streamed PutObject is about to send the file (after its first pass,
    // where there is one).
    std::function<void()> before_stream;
    // Sees, and may change, what DetectVerification found (as a server that
    // proves nothing would answer: the paths of such servers tested against
    // one that checks them).
    std::function<void(Verification&)> on_verification;
    // A streamed PutObject is about to send the bytes at `offset`: true
    // drops the connection there, as a network failure would.
    std::function<bool(uint64_t offset)> cut_stream;
    // HeadObject just showed a short body under key, about to be deleted.
    std::function<void(const std::string& key)> before_truncated_delete;
  };

  // Uses the process-wide BufferPool sized by options.buffer_pool_bytes.
  explicit S3ObjectStore(const S3Options& options, Hooks hooks = {});
  S3ObjectStore(const S3Options& options, BufferPool& pool, Hooks hooks = {});
  // Multipart uploads recorded in `journal` and resumed from it (may be null:
  // then never resumed).
  S3ObjectStore(const S3Options& options, BufferPool& pool, std::shared_ptr<UploadJournal> journal,
                Hooks hooks = {});

  Result<std::optional<ObjectInfo>> Stat(const std::string& key, std::stop_token stop) override;
  Result<ObjectInfo> Upload(const std::string& key, int fd, uint64_t size,
                            const std::string& sha256_hex, std::stop_token stop) override;
  std::optional<std::chrono::steady_clock::time_point> LastProgress() const override {
    return client_.LastProgress();
  }
  TransportCounts Transport() const override { return client_.Transport(); }

  // HeadBucket, CreateBucket when missing (see S3Client::EnsureBucket).
  Status EnsureBucket() { return client_.EnsureBucket(); }
  // Finds out what the server verifies: two PutObjects of a small probe
  // object under .media-sync/probe/, one signed with another body's hash,
  // one with another body's x-amz-checksum-sha256 (deleted again where the
  // server kept it). A server that refuses them proves what it stores; the
  // uploads that follow rely on it (see "One request" above). kOutage when
  // the server cannot be asked; any other refusal proves nothing (logged).
  Result<Verification> DetectVerification(const std::stop_token& stop = {});
  // As last detected; nothing proven before.
  Verification verification() const;
  // DetectVerification once per store, by the first upload above one part
  // (the one that needs it; the first small files need not wait for it).
  // Later calls return what it found; a probe cut by an outage or a stop is
  // tried again by the next upload.
  Result<Verification> EnsureVerificationKnown(const std::stop_token& stop);
  // Aborts multipart uploads under prefix initiated more than older_than ago
  // (left behind by a crashed worker), except those the journal still
  // records (a worker sent a part of it within the journal's retention: it
  // is being continued, however long ago it began). Returns how many were
  // aborted. A server without ListMultipartUploads answers kConfiguration.
  Result<int> SweepStaleUploads(const std::string& prefix, std::chrono::seconds older_than);
  // The same over a listing already made.
  Result<int> AbortStaleUploads(const std::vector<MultipartUploadInfo>& uploads,
                                std::chrono::seconds older_than);

  S3Client& client() { return client_; }
  BufferPool& pool() { return pool_; }

  // max(configured, ceil(file_size / 10000)) rounded up to whole MiB, at
  // least 5 MiB: S3's limits (10,000 parts, 5 MiB minimum part).
  static uint64_t PartSizeFor(uint64_t file_size, uint64_t configured);

 private:
  // One upload by the path its size calls for. `emptied`: a short body was
  // deleted and the key left empty (see the header comment).
  Result<ObjectInfo> UploadOnce(const std::string& key, int fd, uint64_t size,
                                const std::string& sha256_hex, const std::stop_token& stop,
                                bool& emptied);
  Result<ObjectInfo> UploadWhole(const std::string& key, int fd, uint64_t size,
                                 const std::string& sha256_hex, const std::stop_token& stop,
                                 bool& emptied);
  Result<ObjectInfo> UploadStreamed(const std::string& key, int fd, uint64_t size,
                                    const std::string& sha256_hex, const std::stop_token& stop,
                                    bool& emptied);
  // One PutObject that the server proves (Verification): no HeadObject, the
  // file read once.
  // DetectVerification's probes (the caller holds detect_mutex_).
  Result<Verification> Probe(const std::stop_token& stop) REQUIRES(detect_mutex_);
  Result<ObjectInfo> UploadVerified(const std::string& key, int fd, uint64_t size,
                                    const std::string& sha256_hex, const std::stop_token& stop);
  Status UploadMultipart(const std::string& key, int fd, uint64_t size,
                         const std::string& sha256_hex, const std::stop_token& stop);
  // The journal's record of key's upload when it can be continued with parts
  // of part_size; a record of another part size is aborted and forgotten.
  std::optional<JournaledUpload> FindResumable(const std::string& key, const std::string& name,
                                               uint64_t part_size);
  // Sends what upload lacks and completes it; on failure leaves it for the
  // next attempt or aborts it (see "Resuming" above).
  Status ContinueMultipart(const std::string& key, const std::string& name,
                           const JournaledUpload& upload, int fd, uint64_t size,
                           const std::string& sha256_hex, const std::stop_token& stop);
  // Every part in order: hashed, then reused when upload.parts holds it with
  // the local bytes' MD5, else sent and recorded.
  Status SendParts(const std::string& key, const std::string& name, const JournaledUpload& upload,
                   int fd, uint64_t size, const std::string& sha256_hex,
                   std::vector<CompletedPart>& completed, const std::stop_token& stop);
  // The journal's name of key's upload: endpoint, bucket and key.
  std::string JournalName(const std::string& key) const;
  // Journal writes whose failure costs a resumption only: logged.
  void RecordQuietly(const std::string& name, const std::string& upload_id,
                     const JournaledPart& part);
  void ForgetQuietly(const std::string& name, const std::string& upload_id);
  // After HeadObject: the object under key when it is this file (its local
  // bytes hashed too), else nullopt.
  Result<std::optional<ObjectInfo>> FindIdentical(const std::string& key, int fd, uint64_t size,
                                                  const std::string& sha256_hex,
                                                  const std::stop_token& stop);
  // A PutObject answered `etag`: proven by it, or by HeadObject.
  Result<ObjectInfo> Acknowledged(const std::string& key, uint64_t size,
                                  const std::string& sha256_hex, std::string etag,
                                  const std::string& md5_hex, const std::stop_token& stop);
  void Proven(Proof proof) const;
  // kJobPermanent (kTooLarge) when the parts this file needs exceed the pool.
  Status FitsThePool(uint64_t size) const;
  void AbortQuietly(const std::string& key, const std::string& upload_id);
  // After an interrupted PutObject: deletes a short body under key (see the
  // header comment). True when a delete left the key empty.
  bool RemoveTruncated(const std::string& key, uint64_t size);
  Result<ObjectInfo> Verify(const std::string& key, uint64_t size, const std::string& sha256_hex,
                            std::stop_token stop);

  S3Client client_;
  std::atomic<bool> proves_payload_hash_{false};
  std::atomic<bool> proves_checksum_{false};
  Mutex detect_mutex_;
  bool detected_ GUARDED_BY(detect_mutex_) = false;
  BufferPool& pool_;
  const std::shared_ptr<UploadJournal> journal_;
  Hooks hooks_;
};

}  // namespace media_sync::s3
