// Costs of the S3 client's CPU work, and (when a server is given) whole-file
// uploads through S3ObjectStore.
//
//   s3_bench                                   hashing and signing only
//   S3_BENCH_ENDPOINT=127.0.0.1:port S3_BENCH_FILE=/path s3_bench --benchmark_filter=Upload
//                                              also single PUT vs multipart of that file
// (bench/upload_vs_curl.sh starts a stack and does the second form.)
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/hash.h"
#include "s3/buffer_pool.h"
#include "s3/s3_object_store.h"
#include "s3/sigv4.h"

namespace media_sync::s3 {
namespace {

std::vector<char> Bytes(size_t size) {
  std::vector<char> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(i * 131 + 7);
  return bytes;
}

void BM_Sha256(benchmark::State& state) {
  auto bytes = Bytes(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    Hasher sha256;
    sha256.Update(bytes.data(), bytes.size());
    benchmark::DoNotOptimize(sha256.FinishRaw());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Sha256)->Arg(64 << 10)->Arg(8 << 20);

void BM_Sha256AndMd5(benchmark::State& state) {
  auto bytes = Bytes(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    Hasher sha256;
    Hasher md5(Hasher::Algorithm::kMd5);
    sha256.Update(bytes.data(), bytes.size());
    md5.Update(bytes.data(), bytes.size());
    benchmark::DoNotOptimize(sha256.FinishRaw());
    benchmark::DoNotOptimize(md5.FinishRaw());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Sha256AndMd5)->Arg(8 << 20);

// One PutObject's signature: canonical request, string to sign, HMAC chain
// (the per-day signing key is cached, as in the client).
void BM_SignPutObject(benchmark::State& state) {
  SigV4Signer signer("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                     "us-east-1");
  const auto now = std::chrono::system_clock::now();
  for (auto _ : state) {
    SigningRequest request;
    request.method = "PUT";
    request.encoded_path = UriEncodePath(
        "/osint-media/media/ab/cd/"
        "abcd000000000000000000000000000000000000000000000000000000000000.jpg");
    request.headers = {
        {"host", "127.0.0.1:9000"},
        {"x-amz-content-sha256",
         "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"},
        {"x-amz-meta-sha256", "abcd000000000000000000000000000000000000000000000000000000000000"}};
    request.payload_sha256_hex = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    benchmark::DoNotOptimize(signer.Sign(request, now));
  }
}
BENCHMARK(BM_SignPutObject);

// Whole-file upload to a live server: arg 0 = single PutObject (file read
// into one buffer), arg 1 = multipart with 8 MiB parts, 4 in flight.
void BM_Upload(benchmark::State& state) {
  const char* endpoint = std::getenv("S3_BENCH_ENDPOINT");
  const char* path = std::getenv("S3_BENCH_FILE");
  if (endpoint == nullptr || path == nullptr) {
    state.SkipWithError("set S3_BENCH_ENDPOINT and S3_BENCH_FILE");
    return;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat info {};
  fstat(fd, &info);
  const auto size = static_cast<uint64_t>(info.st_size);
  auto sha256 = Sha256OfFd(fd, size);
  const bool single = state.range(0) == 0;

  S3Options options;
  options.endpoint = endpoint;
  options.access_key = options.secret_key = "S3RVER";
  options.bucket = std::getenv("S3_BENCH_BUCKET") ? std::getenv("S3_BENCH_BUCKET") : "osint-media";
  options.part_size = 8ull << 20;
  options.part_parallelism = 4;
  options.buffer_pool_bytes = 32ull << 20;
  // single: one PutObject streamed from the file (the threshold admits it).
  options.multipart_threshold = single ? std::max<uint64_t>(size, 16ull << 20) : 16ull << 20;
  BufferPool pool(options.buffer_pool_bytes);
  S3ObjectStore store(options, pool);
  int round = 0;
  for (auto _ : state) {
    const std::string key = "bench/" + std::string(single ? "put" : "multipart") + "/" +
                            std::to_string(round++) + "/" + *sha256;
    auto uploaded = store.Upload(key, fd, size, *sha256, {});
    if (!uploaded.ok()) {
      state.SkipWithError(uploaded.error().message.c_str());
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  state.SetLabel(single ? "streamed PutObject" : "multipart 8 MiB x4");
  close(fd);
}
BENCHMARK(BM_Upload)->Arg(0)->Arg(1)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace media_sync::s3

BENCHMARK_MAIN();
