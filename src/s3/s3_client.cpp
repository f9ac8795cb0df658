#include "s3/s3_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>

#include "core/hash.h"
#include "s3/bandwidth_limiter.h"
#include "s3/s3_errors.h"
#include "util/liveness.h"

namespace media_sync::s3 {

struct detail::Call {
  std::string operation;  // S3 API name, for messages
  std::string method;
  std::string key;  // "" for bucket calls
  QueryList query;
  HeaderList headers;  // extra headers, all signed
  std::span<const char> body;
  // A body read on demand instead of `body` (PutObjectStream).
  S3Client::BodyReader body_reader;
  uint64_t body_reader_size = 0;
  // A reply body handed on as it arrives instead of kept in the response
  // (GetObjectStreamed); only a 2xx reply's body goes there.
  S3Client::BodySink body_sink;
  bool paced = false;          // a media body, sent or received under the client's BandwidthLimiter
  std::string payload_sha256;  // of body; computed when empty
  size_t max_response_body = 1 << 20;
};

namespace detail {

void EasyDeleter::operator()(CURL* easy) const { curl_easy_cleanup(easy); }
void MultiDeleter::operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
void ShareDeleter::operator()(CURLSH* share) const { curl_share_cleanup(share); }

struct ShareLocks {
  std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<ShareLocks*>(user)->locks.at(static_cast<size_t>(data)).lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<ShareLocks*>(user)->locks.at(static_cast<size_t>(data)).unlock();
  }
};

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// One HTTP request and its reply, bound to a pooled easy handle. Lives at a
// fixed address while curl runs it (the callbacks point at it).
struct Exchange {
  Call call;
  EasyHandle easy;
  std::unique_ptr<curl_slist, SlistDeleter> header_list;
  std::string url;
  size_t upload_offset = 0;
  BandwidthLimiter* limiter = nullptr;  // paces the body when set
  HttpResponse response;
  std::stop_token stop;
  curl_off_t bytes_moved = 0;  // sent + received at the last progress callback
  std::atomic<int64_t>* last_progress_ns = nullptr;  // the client's, updated as bytes move
  char error_buffer[CURL_ERROR_SIZE] = {};
};

}  // namespace detail

namespace {

using detail::Call;
using detail::Exchange;

Call MakeCall(std::string operation, std::string method, std::string key) {
  Call call;
  call.operation = std::move(operation);
  call.method = std::move(method);
  call.key = std::move(key);
  return call;
}

constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
// Idle handles kept, each with its live connection: as many as jobs may be
// in flight to one box (SYNC_CONCURRENCY's ceiling), so a busy box's
// connections outlive a lull instead of being opened again.
constexpr size_t kMaxIdleHandles = 1024;

void GlobalInitOnce() {
  static const bool initialised = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)initialised;
}

std::string StripScheme(std::string endpoint) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (endpoint.rfind(scheme, 0) == 0) endpoint.erase(0, scheme.size());
  }
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return endpoint;
}

size_t ReadBody(char* buffer, size_t size, size_t count, void* user) {
  auto* exchange = static_cast<Exchange*>(user);
  size_t capacity = size * count;
  if (exchange->limiter != nullptr) {
    const uint64_t body_size =
        exchange->call.body_reader ? exchange->call.body_reader_size : exchange->call.body.size();
    const uint64_t left = body_size - std::min<uint64_t>(body_size, exchange->upload_offset);
    if (left > 0) {
      // Waits here, on the transfer's own thread, until the cap lets bytes go.
      capacity = exchange->limiter->Acquire(std::min<uint64_t>(capacity, left), exchange->stop);
      if (capacity == 0) return CURL_READFUNC_ABORT;  // stop requested: kCancelled
      Liveness::Beat();  // a paced transfer that moves bytes is progress
    }
  }
  if (exchange->call.body_reader) {
    long n = exchange->call.body_reader(buffer, capacity, exchange->upload_offset);
    if (n < 0) return CURL_READFUNC_ABORT;
    exchange->upload_offset += static_cast<size_t>(n);
    return static_cast<size_t>(n);
  }
  const auto& body = exchange->call.body;
  size_t n = std::min(capacity, body.size() - exchange->upload_offset);
  std::memcpy(buffer, body.data() + exchange->upload_offset, n);
  exchange->upload_offset += n;
  return n;
}

// curl rewinds when it resends a request on a fresh connection (a reused
// keep-alive connection that the server had closed).
int SeekBody(void* user, curl_off_t offset, int origin) {
  auto* exchange = static_cast<Exchange*>(user);
  if (exchange->call.body_reader) {
    // A streamed body restarts from its beginning only (its reader hashes as it goes).
    if (origin != SEEK_SET || offset != 0) return CURL_SEEKFUNC_CANTSEEK;
    exchange->upload_offset = 0;
    return CURL_SEEKFUNC_OK;
  }
  if (origin != SEEK_SET || offset < 0 ||
      static_cast<size_t>(offset) > exchange->call.body.size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  exchange->upload_offset = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* exchange = static_cast<Exchange*>(user);
  size_t n = size * count;
  const long status = exchange->response.status;
  if (exchange->call.body_sink && status >= 200 && status < 300) {
    if (exchange->limiter != nullptr) {
      // The bytes are here already; waiting before taking them slows the
      // sender down through TCP's window, as a paced upload slows curl.
      for (size_t paid = 0; paid < n;) {
        size_t granted = exchange->limiter->Acquire(n - paid, exchange->stop);
        if (granted == 0) return 0;  // stop requested: the transfer ends
        paid += granted;
        Liveness::Beat();
      }
    }
    return exchange->call.body_sink(data, n) ? n : 0;
  }
  std::string& body = exchange->response.body;
  size_t room =
      exchange->call.max_response_body - std::min(exchange->call.max_response_body, body.size());
  body.append(data, std::min(n, room));
  return n;
}

size_t WriteHeader(char* data, size_t size, size_t count, void* user) {
  auto* exchange = static_cast<Exchange*>(user);
  size_t n = size * count;
  std::string_view line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {
    exchange->response.headers.clear();  // a new status line (after 100 Continue)
    // The status, known before the body arrives (WriteBody routes by it).
    if (size_t space = line.find(' '); space != std::string_view::npos) {
      exchange->response.status =
          std::strtol(std::string(line.substr(space + 1, 3)).c_str(), nullptr, 10);
    }
    return n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  std::string name(line.substr(0, colon));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  exchange->response.headers[name] = std::string(value);
  return n;
}

int OnProgress(void* user, curl_off_t, curl_off_t received, curl_off_t, curl_off_t sent) {
  auto* exchange = static_cast<Exchange*>(user);
  // A transfer that moves bytes is progress, however long it takes; a
  // stalled one is not (/healthz, util/liveness.h).
  if (received + sent != exchange->bytes_moved) {
    exchange->bytes_moved = received + sent;
    Liveness::Beat();
    if (exchange->last_progress_ns != nullptr) {
      exchange->last_progress_ns->store(std::chrono::steady_clock::now().time_since_epoch().count(),
                                        std::memory_order_relaxed);
    }
  }
  return exchange->stop.stop_requested() ? 1 : 0;
}

std::string Unquote(std::string etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return etag;
}

Error TransportError(const Exchange& exchange, CURLcode code) {
  std::string text = exchange.call.operation;
  if (!exchange.call.key.empty()) text += " " + exchange.call.key;
  if (code == CURLE_ABORTED_BY_CALLBACK && exchange.stop.stop_requested()) {
    return Error::Cancelled(text + ": stopped");
  }
  text += ": " + std::string(curl_easy_strerror(code));
  if (exchange.error_buffer[0] != '\0') text += " (" + std::string(exchange.error_buffer) + ")";
  switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return Error::Configuration(std::move(text));
    default:
      // Refused, reset, DNS, timeouts, TLS handshake cut short: the box is down.
      return Error::Outage(std::move(text));
  }
}

std::chrono::system_clock::time_point ParseIsoTime(const std::string& text) {
  std::tm tm{};
  if (strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// A conditional write (If-None-Match: *) that found an object under its key:
// 412 PreconditionFailed, or 409 ConditionalRequestConflict while another
// conditional write of the key is in flight.
bool IsKeptByCondition(const HttpResponse& response) {
  return response.status == 412 ||
         (response.status == 409 &&
          response.body.find("ConditionalRequestConflict") != std::string::npos);
}

void AddMetadataHeaders(HeaderList& headers, const std::map<std::string, std::string>& metadata) {
  for (const auto& [name, value] : metadata) headers.emplace_back("x-amz-meta-" + name, value);
}

}  // namespace

S3Client::S3Client(const S3Options& options)
    : S3Client(options, BandwidthLimiter::ForProcess(options.bandwidth_limit)) {}

S3Client::S3Client(S3Options options, BandwidthLimiter* limiter)
    : options_(std::move(options)),
      host_(StripScheme(options_.endpoint)),
      base_url_((options_.secure ? "https://" : "http://") + host_),
      signer_(options_.access_key, options_.secret_key, options_.region),
      limiter_(limiter),
      share_locks_(std::make_unique<detail::ShareLocks>()) {
  GlobalInitOnce();
  share_.reset(curl_share_init());
  if (share_) {
    curl_share_setopt(share_.get(), CURLSHOPT_LOCKFUNC, &detail::ShareLocks::Lock);
    curl_share_setopt(share_.get(), CURLSHOPT_UNLOCKFUNC, &detail::ShareLocks::Unlock);
    curl_share_setopt(share_.get(), CURLSHOPT_USERDATA, share_locks_.get());
    curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  }
}

S3Client::~S3Client() = default;

TransportCounts S3Client::Transport() const {
  return TransportCounts{requests_.load(std::memory_order_relaxed),
                         connections_.load(std::memory_order_relaxed),
                         tls_handshakes_.load(std::memory_order_relaxed)};
}

std::optional<std::chrono::steady_clock::time_point> S3Client::LastProgress() const {
  int64_t ns = last_progress_ns_.load(std::memory_order_relaxed);
  if (ns == 0) return std::nullopt;
  return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(ns));
}

detail::EasyHandle S3Client::TakeHandle() {
  {
    MutexLock lock(pool_mutex_);
    if (!idle_handles_.empty()) {
      detail::EasyHandle handle = std::move(idle_handles_.back());
      idle_handles_.pop_back();
      return handle;
    }
  }
  return detail::EasyHandle(curl_easy_init());
}

void S3Client::ReturnHandle(detail::EasyHandle handle) {
  if (!handle) return;
  // Reset keeps the handle's live connections and DNS cache: that is the
  // keep-alive reuse.
  curl_easy_reset(handle.get());
  MutexLock lock(pool_mutex_);
  if (idle_handles_.size() < kMaxIdleHandles) idle_handles_.push_back(std::move(handle));
}

std::unique_ptr<Exchange> S3Client::Prepare(detail::Call call, std::stop_token stop) {
  auto exchange = std::make_unique<Exchange>();
  exchange->stop = std::move(stop);
  exchange->last_progress_ns = &last_progress_ns_;
  exchange->call = std::move(call);
  Call& c = exchange->call;
  if (c.paced) exchange->limiter = limiter_;
  if (c.payload_sha256.empty()) {
    c.payload_sha256 =
        c.body.empty() ? kEmptySha256 : Sha256Hex(std::string_view(c.body.data(), c.body.size()));
  }

  std::string path = "/" + options_.bucket;
  if (!c.key.empty()) path += "/" + c.key;
  SigningRequest signing;
  signing.method = c.method;
  signing.encoded_path = UriEncodePath(path);
  signing.query = c.query;
  signing.headers = c.headers;
  signing.headers.emplace_back("host", host_);
  signing.headers.emplace_back("x-amz-content-sha256", c.payload_sha256);
  signing.payload_sha256_hex = c.payload_sha256;
  SignatureParts signature = signer_.Sign(signing, std::chrono::system_clock::now());

  exchange->url = base_url_ + signing.encoded_path;
  std::string query = CanonicalQueryString(c.query);
  if (!query.empty()) exchange->url += "?" + query;

  curl_slist* list = nullptr;
  for (const auto& [name, value] : signing.headers) {
    std::string line = name;
    line.append(": ").append(value);
    list = curl_slist_append(list, line.c_str());
  }
  list = curl_slist_append(list, ("Authorization: " + signature.authorization).c_str());
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
  list = curl_slist_append(list, "Content-Type:");
  exchange->header_list.reset(list);

  exchange->easy = TakeHandle();
  CURL* easy = exchange->easy.get();
  if (easy == nullptr) return exchange;
  Exchange* self = exchange.get();
  curl_easy_setopt(easy, CURLOPT_URL, exchange->url.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, exchange->error_buffer);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  if (share_) curl_easy_setopt(easy, CURLOPT_SHARE, share_.get());
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(options_.low_speed_limit));
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(options_.low_speed_time.count()));
  if (!options_.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, self);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, self);
  curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(easy, CURLOPT_XFERINFODATA, self);

  if (c.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (c.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (c.method == "PUT" || c.method == "POST") {
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, c.method.c_str());
    uint64_t body_size = c.body_reader ? c.body_reader_size : c.body.size();
    curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_size));
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, ReadBody);
    curl_easy_setopt(easy, CURLOPT_READDATA, self);
    curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, SeekBody);
    curl_easy_setopt(easy, CURLOPT_SEEKDATA, self);
  } else {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, c.method.c_str());
  }
  return exchange;
}

Result<HttpResponse> S3Client::Finish(Exchange& exchange, int curl_code) {
  auto code = static_cast<CURLcode>(curl_code);
  if (exchange.easy) {
    // What this request cost on the wire: a new connection, a TLS handshake.
    long connects = 0;
    curl_easy_getinfo(exchange.easy.get(), CURLINFO_NUM_CONNECTS, &connects);
    curl_off_t handshake_done = 0;
    curl_easy_getinfo(exchange.easy.get(), CURLINFO_APPCONNECT_TIME_T, &handshake_done);
    requests_.fetch_add(1, std::memory_order_relaxed);
    connections_.fetch_add(static_cast<uint64_t>(std::max(0L, connects)),
                           std::memory_order_relaxed);
    if (options_.secure && connects > 0 && handshake_done > 0) {
      tls_handshakes_.fetch_add(1, std::memory_order_relaxed);
    }
    if (connects > 0) {
      // From the request's start to the connection ready (name lookup, TCP
      // connect and, over TLS, the handshake): not the box's latency.
      curl_off_t connected = 0;
      curl_easy_getinfo(exchange.easy.get(), CURLINFO_CONNECT_TIME_T, &connected);
      ConnectionSetupOnThisThread() +=
          std::chrono::microseconds(std::max<curl_off_t>(connected, handshake_done));
    }
  }
  if (code != CURLE_OK) {
    Error error = TransportError(exchange, code);
    // A handle whose transfer failed may hold a broken connection: drop it.
    exchange.easy.reset();
    return error;
  }
  curl_easy_getinfo(exchange.easy.get(), CURLINFO_RESPONSE_CODE, &exchange.response.status);
  // An answer is progress too, body or not (a HeadObject moves no body).
  last_progress_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                          std::memory_order_relaxed);
  ReturnHandle(std::move(exchange.easy));
  return std::move(exchange.response);
}

Result<HttpResponse> S3Client::Execute(detail::Call call, std::stop_token stop) {
  std::unique_ptr<Exchange> exchange = Prepare(std::move(call), std::move(stop));
  if (!exchange->easy) return Error::Outage(exchange->call.operation + ": curl_easy_init failed");
  CURLcode code = curl_easy_perform(exchange->easy.get());
  return Finish(*exchange, code);
}

Status S3Client::CheckStatus(const detail::Call& call, const HttpResponse& response) const {
  if (response.status >= 200 && response.status < 300) return Ok();
  return ClassifyHttpError(response.status, response.body, call.operation, call.key);
}

Result<std::optional<ObjectInfo>> S3Client::HeadObject(const std::string& key,
                                                       std::stop_token stop) {
  Call call = MakeCall("HeadObject", "HEAD", key);
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (response->status == 404) return std::optional<ObjectInfo>();
  if (Status status = CheckStatus(call, *response); !status.ok()) return status.error();
  ObjectInfo info;
  auto& headers = response->headers;
  if (auto it = headers.find("content-length"); it != headers.end()) {
    info.size = std::strtoull(it->second.c_str(), nullptr, 10);
  }
  if (auto it = headers.find("x-amz-meta-sha256"); it != headers.end()) info.sha256 = it->second;
  if (auto it = headers.find("etag"); it != headers.end()) info.etag = Unquote(it->second);
  return std::optional<ObjectInfo>(std::move(info));
}

Result<std::string> S3Client::GetObject(const std::string& key, std::optional<ByteRange> range,
                                        std::stop_token stop) {
  Call call = MakeCall("GetObject", "GET", key);
  call.max_response_body = SIZE_MAX;
  if (range) {
    call.headers.emplace_back(
        "range", "bytes=" + std::to_string(range->first) + "-" + std::to_string(range->last));
  }
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (Status status = CheckStatus(call, *response); !status.ok()) return status.error();
  return std::move(response->body);
}

Result<std::optional<HttpResponse>> S3Client::GetObjectStreamed(const std::string& key,
                                                                const BodySink& sink,
                                                                const std::stop_token& stop) {
  Call call = MakeCall("GetObject", "GET", key);
  call.paced = true;
  // Servers that keep an object's checksum (x-amz-checksum-sha256) send it
  // only when asked; the reader compares it with what it hashed.
  call.headers.emplace_back("x-amz-checksum-mode", "ENABLED");
  bool sink_ended = false;
  call.body_sink = [&sink, &sink_ended](const char* data, size_t size) {
    if (sink(data, size)) return true;
    sink_ended = true;
    return false;
  };
  auto response = Execute(call, stop);
  if (!response.ok()) {
    if (sink_ended || stop.stop_requested()) {
      return Error::Cancelled("GetObject " + key + ": stopped");
    }
    return response.error();
  }
  if (response->status == 404) return std::optional<HttpResponse>();
  if (Status status = CheckStatus(call, *response); !status.ok()) return status.error();
  return std::optional<HttpResponse>(std::move(*response));
}

Result<ObjectPage> S3Client::ListObjectsV2(const std::string& prefix,
                                           const std::string& start_after,
                                           const std::string& continuation_token, int max_keys,
                                           std::stop_token stop) {
  Call call = MakeCall("ListObjectsV2", "GET", "");
  call.query = {{"list-type", "2"},
                {"max-keys", std::to_string(std::clamp(max_keys, 1, 1000))},
                {"prefix", prefix}};
  if (!continuation_token.empty()) {
    call.query.emplace_back("continuation-token", continuation_token);
  } else if (!start_after.empty()) {
    call.query.emplace_back("start-after", start_after);
  }
  call.max_response_body = 16 << 20;  // a page of 1000 keys is about 300 KiB
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (Status status = CheckStatus(call, *response); !status.ok()) {
    return status.error().Wrap("bucket " + options_.bucket);
  }
  ObjectPage page;
  for (std::string_view block : XmlElements(response->body, "Contents")) {
    ListedObject object;
    object.key = XmlTagText(block, "Key").value_or("");
    object.size = std::strtoull(XmlTagText(block, "Size").value_or("0").c_str(), nullptr, 10);
    object.etag = Unquote(XmlTagText(block, "ETag").value_or(""));
    object.last_modified = ParseIsoTime(XmlTagText(block, "LastModified").value_or(""));
    if (!object.key.empty()) page.objects.push_back(std::move(object));
  }
  if (XmlTagText(response->body, "IsTruncated").value_or("false") == "true") {
    page.next_token = XmlTagText(response->body, "NextContinuationToken").value_or("");
    if (page.next_token.empty()) {
      // A truncated page must say where the next begins; without it the
      // listing would end early and every key after it pass for missing.
      return Error::Outage("ListObjectsV2 bucket " + options_.bucket +
                           ": truncated reply without NextContinuationToken");
    }
  }
  return page;
}

Result<HttpResponse> S3Client::Send(const RawRequest& request, const std::stop_token& stop) {
  Call call = MakeCall(request.method + " request", request.method, request.key);
  call.query = request.query;
  call.headers = request.headers;
  call.body = request.body;
  call.payload_sha256 = request.payload_sha256;
  return Execute(std::move(call), stop);
}

Result<std::string> S3Client::PutObject(const std::string& key, const Payload& payload,
                                        const std::map<std::string, std::string>& metadata,
                                        std::stop_token stop) {
  Call call = MakeCall("PutObject", "PUT", key);
  call.paced = true;
  call.body = payload.bytes;
  call.payload_sha256 = payload.sha256_hex;
  if (!payload.md5_base64.empty()) call.headers.emplace_back("content-md5", payload.md5_base64);
  AddMetadataHeaders(call.headers, metadata);
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (Status status = CheckStatus(call, *response); !status.ok()) return status.error();
  return Unquote(response->headers["etag"]);
}

Result<std::optional<std::string>> S3Client::PutObjectIfAbsent(
    const std::string& key, const Payload& payload,
    const std::map<std::string, std::string>& metadata, std::stop_token stop) {
  Call call = MakeCall("PutObject", "PUT", key);
  call.paced = true;
  call.body = payload.bytes;
  call.payload_sha256 = payload.sha256_hex;
  call.headers.emplace_back("if-none-match", "*");
  if (!payload.md5_base64.empty()) call.headers.emplace_back("content-md5", payload.md5_base64);
  AddMetadataHeaders(call.headers, metadata);
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (IsKeptByCondition(*response)) return std::optional<std::string>();
  if (Status status = CheckStatus(call, *response); !status.ok()) return status.error();
  return std::optional<std::string>(Unquote(response->headers["etag"]));
}

Result<std::string> S3Client::PutObjectStream(const std::string& key, uint64_t size,
                                              const std::string& payload_sha256_hex,
                                              const std::string& md5_base64, BodyReader read,
                                              const std::map<std::string, std::string>& metadata,
                                              std::stop_token stop) {
  Call call = MakeCall("PutObject", "PUT", key);
  call.paced = true;
  call.body_reader = std::move(read);
  call.body_reader_size = size;
  call.payload_sha256 = payload_sha256_hex;
  if (!md5_base64.empty()) call.headers.emplace_back("content-md5", md5_base64);
  AddMetadataHeaders(call.headers, metadata);
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (Status status = CheckStatus(call, *response); !status.ok()) return status.error();
  return Unquote(response->headers["etag"]);
}

Result<std::optional<std::string>> S3Client::PutObjectStreamIfAbsent(
    const std::string& key, uint64_t size, const std::string& payload_sha256_hex,
    const std::string& checksum_sha256_base64, BodyReader read,
    const std::map<std::string, std::string>& metadata, std::stop_token stop) {
  Call call = MakeCall("PutObject", "PUT", key);
  call.paced = true;
  call.body_reader = std::move(read);
  call.body_reader_size = size;
  call.payload_sha256 = payload_sha256_hex;
  call.headers.emplace_back("if-none-match", "*");
  if (!checksum_sha256_base64.empty()) {
    call.headers.emplace_back("x-amz-checksum-sha256", checksum_sha256_base64);
  }
  AddMetadataHeaders(call.headers, metadata);
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (IsKeptByCondition(*response)) return std::optional<std::string>();
  if (Status status = CheckStatus(call, *response); !status.ok()) return status.error();
  return std::optional<std::string>(Unquote(response->headers["etag"]));
}

Result<HttpResponse> S3Client::ProbePut(const std::string& key, std::span<const char> body,
                                        const std::string& signed_payload_sha256_hex,
                                        const HeaderList& extra_headers, std::stop_token stop) {
  Call call = MakeCall("PutObject", "PUT", key);
  call.body = body;
  call.payload_sha256 = signed_payload_sha256_hex;
  call.headers = extra_headers;
  return Execute(call, std::move(stop));
}

Status S3Client::DeleteObject(const std::string& key, std::stop_token stop) {
  Call call = MakeCall("DeleteObject", "DELETE", key);
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (response->status == 404) return Ok();
  return CheckStatus(call, *response);
}

Result<bool> S3Client::DeleteObjectIfMatch(const std::string& key, const std::string& etag,
                                           std::stop_token stop) {
  Call call = MakeCall("DeleteObject", "DELETE", key);
  call.headers.emplace_back("if-match", "\"" + etag + "\"");
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (response->status == 404) return true;
  if (response->status == 412) return false;
  if (Status status = CheckStatus(call, *response); !status.ok()) return status.error();
  return true;
}

Result<std::string> S3Client::CreateMultipartUpload(
    const std::string& key, const std::map<std::string, std::string>& metadata,
    std::stop_token stop) {
  Call call = MakeCall("CreateMultipartUpload", "POST", key);
  call.query = {{"uploads", ""}};
  AddMetadataHeaders(call.headers, metadata);
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (Status status = CheckStatus(call, *response); !status.ok()) return status.error();
  auto upload_id = XmlTagText(response->body, "UploadId");
  if (!upload_id || upload_id->empty()) {
    return Error::Outage("CreateMultipartUpload " + key + ": reply without UploadId");
  }
  return *upload_id;
}

Result<std::string> S3Client::UploadPart(const std::string& key, const std::string& upload_id,
                                         int part_number, const Payload& payload,
                                         std::stop_token stop) {
  PartTransfers transfers(*this, std::move(stop));
  transfers.Start(key, upload_id, part_number, payload);
  while (true) {
    auto done = transfers.Poll(std::chrono::milliseconds(1000));
    if (!done.empty()) return std::move(done.front().etag);
  }
}

Status S3Client::CompleteMultipartUpload(const std::string& key, const std::string& upload_id,
                                         const std::vector<CompletedPart>& parts,
                                         std::stop_token stop) {
  std::string xml = "<CompleteMultipartUpload>";
  for (const CompletedPart& part : parts) {
    xml += "<Part><PartNumber>" + std::to_string(part.part_number) + "</PartNumber><ETag>\"" +
           XmlEscape(part.etag) + "\"</ETag></Part>";
  }
  xml += "</CompleteMultipartUpload>";
  Call call = MakeCall("CompleteMultipartUpload", "POST", key);
  call.query = {{"uploadId", upload_id}};
  call.body = std::span<const char>(xml.data(), xml.size());
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (Status status = CheckStatus(call, *response); !status.ok()) return status;
  if (response->body.find("<Error>") != std::string::npos) {
    return ClassifyHttpError(500, response->body, call.operation, key);
  }
  return Ok();
}

Status S3Client::AbortMultipartUpload(const std::string& key, const std::string& upload_id,
                                      std::stop_token stop) {
  Call call = MakeCall("AbortMultipartUpload", "DELETE", key);
  call.query = {{"uploadId", upload_id}};
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (response->status == 404) return Ok();  // NoSuchUpload: already gone
  return CheckStatus(call, *response);
}

Result<std::vector<MultipartUploadInfo>> S3Client::ListMultipartUploads(
    const std::string& prefix, const std::stop_token& stop) {
  std::vector<MultipartUploadInfo> uploads;
  std::string key_marker;
  std::string upload_id_marker;
  while (true) {
    Call call = MakeCall("ListMultipartUploads", "GET", "");
    call.query = {{"uploads", ""}, {"prefix", prefix}};
    if (!key_marker.empty()) call.query.emplace_back("key-marker", key_marker);
    if (!upload_id_marker.empty()) call.query.emplace_back("upload-id-marker", upload_id_marker);
    call.max_response_body = 64 << 20;
    auto response = Execute(call, stop);
    if (!response.ok()) return response.error();
    if (Status status = CheckStatus(call, *response); !status.ok()) return status.error();
    for (std::string_view block : XmlElements(response->body, "Upload")) {
      MultipartUploadInfo info;
      info.key = XmlTagText(block, "Key").value_or("");
      info.upload_id = XmlTagText(block, "UploadId").value_or("");
      info.initiated = ParseIsoTime(XmlTagText(block, "Initiated").value_or(""));
      if (!info.upload_id.empty()) uploads.push_back(std::move(info));
    }
    if (XmlTagText(response->body, "IsTruncated").value_or("false") != "true") break;
    key_marker = XmlTagText(response->body, "NextKeyMarker").value_or("");
    upload_id_marker = XmlTagText(response->body, "NextUploadIdMarker").value_or("");
    if (key_marker.empty() && upload_id_marker.empty()) break;
  }
  return uploads;
}

Result<bool> S3Client::HeadBucket(std::stop_token stop) {
  Call call = MakeCall("HeadBucket", "HEAD", "");
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (response->status == 404) return false;
  if (Status status = CheckStatus(call, *response); !status.ok()) {
    return status.error().Wrap("bucket " + options_.bucket);
  }
  return true;
}

Status S3Client::CreateBucket(std::stop_token stop) {
  Call call = MakeCall("CreateBucket", "PUT", "");
  // us-east-1 is the default location and must not be named explicitly.
  std::string xml;
  if (!options_.region.empty() && options_.region != "us-east-1") {
    xml = "<CreateBucketConfiguration><LocationConstraint>" + XmlEscape(options_.region) +
          "</LocationConstraint></CreateBucketConfiguration>";
    call.body = std::span<const char>(xml.data(), xml.size());
  }
  auto response = Execute(call, std::move(stop));
  if (!response.ok()) return response.error();
  if (response->status == 409 &&
      ParseS3ErrorBody(response->body).code == "BucketAlreadyOwnedByYou") {
    return Ok();
  }
  if (Status status = CheckStatus(call, *response); !status.ok()) {
    return status.error().Wrap("bucket " + options_.bucket);
  }
  return Ok();
}

Status S3Client::EnsureBucket(const std::stop_token& stop) {
  auto exists = HeadBucket(stop);
  if (!exists.ok()) return exists.error();
  if (*exists) return Ok();
  Status created = CreateBucket(stop);
  if (!created.ok() && created.error().kind != ErrorKind::kOutage &&
      created.error().kind != ErrorKind::kCancelled) {
    // Another worker may have made it in between (409 BucketAlreadyExists on
    // s3rver, BucketAlreadyOwnedByYou elsewhere): then it is there now.
    auto made_meanwhile = HeadBucket(stop);
    if (made_meanwhile.ok() && *made_meanwhile) return Ok();
    return Error::Configuration("Bucket " + options_.bucket +
                                " is missing and cannot be created: " + created.error().message);
  }
  return created;
}

S3Client::PartTransfers::PartTransfers(S3Client& client, std::stop_token stop)
    : client_(client), stop_(std::move(stop)), multi_(curl_multi_init()) {}

S3Client::PartTransfers::~PartTransfers() {
  for (auto& [easy, exchange] : running_) {
    curl_multi_remove_handle(multi_.get(), easy);
    // Interrupted mid-request: the connection is unusable, so is the handle.
    exchange->easy.reset();
  }
}

void S3Client::PartTransfers::Start(const std::string& key, const std::string& upload_id,
                                    int part_number, const Payload& payload) {
  Call call = MakeCall("UploadPart", "PUT", key);
  call.query = {{"partNumber", std::to_string(part_number)}, {"uploadId", upload_id}};
  call.paced = true;
  call.body = payload.bytes;
  call.payload_sha256 = payload.sha256_hex;
  if (!payload.md5_base64.empty()) call.headers.emplace_back("content-md5", payload.md5_base64);
  std::unique_ptr<Exchange> exchange = client_.Prepare(std::move(call), stop_);
  CURL* easy = exchange->easy.get();
  if (easy == nullptr || curl_multi_add_handle(multi_.get(), easy) != CURLM_OK) {
    // Reported by the next Poll as an outage of this part.
    exchange->easy.reset();
    running_.emplace(reinterpret_cast<CURL*>(exchange.get()), std::move(exchange));
    part_numbers_[reinterpret_cast<CURL*>(running_.rbegin()->second.get())] = part_number;
    return;
  }
  part_numbers_[easy] = part_number;
  running_.emplace(easy, std::move(exchange));
}

std::vector<S3Client::PartTransfers::Outcome> S3Client::PartTransfers::Poll(
    std::chrono::milliseconds max_wait) {
  std::vector<Outcome> done;
  // Parts that could not even be started.
  for (auto it = running_.begin(); it != running_.end();) {
    if (!it->second->easy) {
      done.push_back({part_numbers_[it->first],
                      Error::Outage("UploadPart " + it->second->call.key + ": cannot start")});
      part_numbers_.erase(it->first);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  if (!done.empty() || running_.empty()) return done;

  int still_running = 0;
  curl_multi_perform(multi_.get(), &still_running);
  if (still_running > 0) {
    curl_multi_poll(multi_.get(), nullptr, 0, static_cast<int>(max_wait.count()), nullptr);
    curl_multi_perform(multi_.get(), &still_running);
  }
  int queued = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_.get(), &queued)) {
    if (message->msg != CURLMSG_DONE) continue;
    CURL* easy = message->easy_handle;
    CURLcode code = message->data.result;
    curl_multi_remove_handle(multi_.get(), easy);
    auto it = running_.find(easy);
    if (it == running_.end()) continue;
    std::unique_ptr<Exchange> exchange = std::move(it->second);
    running_.erase(it);
    int part_number = part_numbers_[easy];
    part_numbers_.erase(easy);
    auto response = client_.Finish(*exchange, code);
    if (!response.ok()) {
      done.push_back({part_number, response.error()});
      continue;
    }
    if (Status status = client_.CheckStatus(exchange->call, *response); !status.ok()) {
      done.push_back({part_number, status.error()});
      continue;
    }
    done.push_back({part_number, Unquote(response->headers["etag"])});
  }
  return done;
}

}  // namespace media_sync::s3
