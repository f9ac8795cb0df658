#include "s3/box_check.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <random>

#include "core/hash.h"
#include "s3/s3_client.h"
#include "s3/s3_errors.h"
#include "s3/s3_object_store.h"
#include "util/fd.h"

namespace media_sync::s3 {
namespace {

using Verdict = CheckStep::Verdict;
using Clock = std::chrono::system_clock;

// What S3 tolerates between a request's signing time and its own clock.
constexpr auto kMaxSkew = std::chrono::minutes(15);
// Beyond this the clocks are worth fixing before they drift further.
constexpr auto kSkewWarning = std::chrono::minutes(1);
constexpr size_t kProbeBytes = size_t{64} * 1024;
constexpr std::string_view kProbePrefix = ".media-sync/check/";  // outside media/

struct HostPort {
  std::string host;
  std::string port;
};

HostPort SplitEndpoint(const S3Options& options) {
  std::string endpoint = options.endpoint;
  std::string port = options.secure ? "443" : "80";
  if (!endpoint.empty() && endpoint.front() == '[') {  // [v6]:port
    size_t close = endpoint.find(']');
    if (close != std::string::npos && close + 1 < endpoint.size() && endpoint[close + 1] == ':') {
      port = endpoint.substr(close + 2);
    }
    return {endpoint.substr(1, close == std::string::npos ? std::string::npos : close - 1), port};
  }
  size_t colon = endpoint.rfind(':');
  if (colon != std::string::npos) {
    port = endpoint.substr(colon + 1);
    endpoint.resize(colon);
  }
  return {endpoint, port};
}

std::string Millis(std::chrono::steady_clock::duration duration) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(duration).count()) +
         " ms";
}

std::string Duration(std::chrono::seconds seconds) {
  int64_t total = std::abs(seconds.count());
  std::string text;
  if (total >= 3600) text += std::to_string(total / 3600) + " h ";
  if (total >= 60) text += std::to_string(total / 60 % 60) + " min ";
  return text + std::to_string(total % 60) + " s";
}

std::string RandomHex(size_t digits) {
  std::random_device entropy;
  std::string hex;
  while (hex.size() < digits) {
    char piece[9];
    std::snprintf(piece, sizeof(piece), "%08x", static_cast<unsigned>(entropy()));
    hex += piece;
  }
  hex.resize(digits);
  return hex;
}

// "Sat, 06 Dec 2026 21:46:33 GMT" (RFC 7231), nullopt when not that.
std::optional<Clock::time_point> ParseHttpDate(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S", &tm);
  if (end == nullptr) return std::nullopt;
  return Clock::from_time_t(timegm(&tm));
}

struct CurlDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};

// The steps, in order, each reading what the earlier ones found.
class Checker {
 public:
  Checker(const S3Options& options, const BoxCheckSettings& settings,
          const std::function<void(const CheckStep&)>& on_step)
      : options_(Limited(options, settings)),
        settings_(settings),
        on_step_(on_step),
        client_(options_, nullptr) {}

  std::vector<CheckStep> Run() {
    bool reachable = Resolve() && Connect() && Tls();
    bool answered = reachable && Answer();
    if (!answered) {
      for (std::string_view name : {"clock", "credentials", "bucket", "write", "read", "delete",
                                    "payload-hash", "checksum"}) {
        Skip(name, reachable ? "no answer" : "the box cannot be reached");
      }
      return steps_;
    }
    CheckClock();
    bool usable = Credentials();
    if (!usable) Skip("bucket", "needs the credentials");
    usable = usable && Bucket();
    if (!usable) {
      for (std::string_view name : {"write", "read", "delete", "payload-hash", "checksum"}) {
        Skip(name, "needs the credentials and the bucket");
      }
      return steps_;
    }
    if (WriteReadDelete()) {
      Verification();
    } else {
      Skip("payload-hash", "needs a working write");
      Skip("checksum", "needs a working write");
    }
    return steps_;
  }

 private:
  // The box's settings with the check's bounds on every wait.
  static S3Options Limited(S3Options options, const BoxCheckSettings& settings) {
    options.low_speed_time = settings.timeout;
    options.connect_timeout = std::min<std::chrono::milliseconds>(
        options.connect_timeout,
        std::chrono::duration_cast<std::chrono::milliseconds>(settings.timeout));
    return options;
  }

  bool Report(std::string_view name, Verdict verdict, std::string detail) {
    steps_.push_back(CheckStep{std::string(name), verdict, std::move(detail)});
    if (on_step_) on_step_(steps_.back());
    return verdict != Verdict::kFail;
  }
  void Skip(std::string_view name, const std::string& why) { Report(name, Verdict::kSkipped, why); }

  bool Resolve() {
    address_ = SplitEndpoint(options_);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int code = getaddrinfo(address_.host.c_str(), address_.port.c_str(), &hints, &found);
    if (code != 0) {
      return Report("resolve", Verdict::kFail,
                    "cannot resolve " + address_.host + ": " + gai_strerror(code));
    }
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(found, freeaddrinfo);
    std::string first;
    int count = 0;
    for (addrinfo* at = found; at != nullptr; at = at->ai_next) {
      if (count++ == 0) {
        std::memcpy(&address_storage_, at->ai_addr, at->ai_addrlen);
        address_length_ = at->ai_addrlen;
        family_ = at->ai_family;
        char text[INET6_ADDRSTRLEN] = {};
        const void* raw =
            at->ai_family == AF_INET6
                ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(at->ai_addr)->sin6_addr)
                : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(at->ai_addr)->sin_addr);
        inet_ntop(at->ai_family, raw, text, sizeof(text));
        first = text;
      }
    }
    return Report("resolve", Verdict::kOk,
                  address_.host + " is " + first +
                      (count > 1 ? " (and " + std::to_string(count - 1) + " more)" : ""));
  }

  bool Connect() {
    auto started = std::chrono::steady_clock::now();
    UniqueFd socket_fd(::socket(family_, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!socket_fd) return Report("connect", Verdict::kFail, std::strerror(errno));
    int code = ::connect(socket_fd.get(), reinterpret_cast<const sockaddr*>(&address_storage_),
                         address_length_);
    if (code != 0 && errno != EINPROGRESS) {
      return Report("connect", Verdict::kFail,
                    "port " + address_.port + ": " + std::strerror(errno));
    }
    if (code != 0) {
      pollfd waiting{socket_fd.get(), POLLOUT, 0};
      int ready = ::poll(&waiting, 1, static_cast<int>(options_.connect_timeout.count()));
      if (ready == 0) {
        return Report("connect", Verdict::kFail,
                      "port " + address_.port + ": no answer within " +
                          Millis(options_.connect_timeout) +
                          " (a firewall dropping packets, or the host is down)");
      }
      int error = 0;
      socklen_t length = sizeof(error);
      getsockopt(socket_fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
      if (ready < 0 || error != 0) {
        return Report("connect", Verdict::kFail,
                      "port " + address_.port + ": " + std::strerror(ready < 0 ? errno : error));
      }
    }
    return Report("connect", Verdict::kOk,
                  "port " + address_.port + " open (" +
                      Millis(std::chrono::steady_clock::now() - started) + ")");
  }

  bool Tls() {
    if (!options_.secure) {
      Report("tls", Verdict::kSkipped, "plain HTTP (MINIO_SECURE=false)");
      return true;
    }
    std::unique_ptr<CURL, CurlDeleter> easy(curl_easy_init());
    if (!easy) return Report("tls", Verdict::kFail, "curl_easy_init failed");
    char error[CURL_ERROR_SIZE] = {};
    std::string url = "https://" + options_.endpoint + "/";
    curl_easy_setopt(easy.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy.get(), CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(easy.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy.get(), CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(easy.get(), CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.connect_timeout.count()));
    curl_easy_setopt(easy.get(), CURLOPT_TIMEOUT_MS,
                     static_cast<long>(settings_.timeout.count() * 1000));
    if (!options_.ca_file.empty()) {
      curl_easy_setopt(easy.get(), CURLOPT_CAINFO, options_.ca_file.c_str());
    }
    CURLcode code = curl_easy_perform(easy.get());
    if (code != CURLE_OK) {
      return Report("tls", Verdict::kFail,
                    std::string(curl_easy_strerror(code)) + (error[0] != '\0' ? ": " : "") + error);
    }
    return Report(
        "tls", Verdict::kOk,
        "handshake done, certificate verified against " +
            (options_.ca_file.empty() ? std::string("the system's CAs") : options_.ca_file));
  }

  bool Answer() {
    S3Client::RawRequest request;
    request.query = {{"list-type", "2"}, {"max-keys", "1"}};
    auto sent_at = Clock::now();
    auto started = std::chrono::steady_clock::now();
    auto reply = client_.Send(request);
    auto took = std::chrono::steady_clock::now() - started;
    if (!reply) {
      std::string why = reply.error().message;
      if (why.find("Timeout") != std::string::npos || why.find("timed out") != std::string::npos ||
          why.find("too slow") != std::string::npos) {
        why = "no reply within " + std::to_string(settings_.timeout.count()) +
              " s: the server accepts connections but does not answer (hung, or overloaded) (" +
              why + ")";
      }
      return Report("answer", Verdict::kFail, why);
    }
    first_reply_ = std::move(*reply);
    // The midpoint: the server stamped its Date somewhere in between.
    reply_time_ = sent_at + std::chrono::duration_cast<Clock::duration>(took / 2);
    return Report("answer", Verdict::kOk,
                  "HTTP " + std::to_string(first_reply_.status) + " in " + Millis(took));
  }

  void CheckClock() {
    auto date = first_reply_.headers.find("date");
    if (date == first_reply_.headers.end()) {
      Report("clock", Verdict::kWarn, "the reply has no Date header: skew not known");
      return;
    }
    auto server = ParseHttpDate(date->second);
    if (!server) {
      Report("clock", Verdict::kWarn, "Date header not understood: " + date->second);
      return;
    }
    auto skew = std::chrono::duration_cast<std::chrono::seconds>(*server - reply_time_);
    std::string direction = skew.count() >= 0 ? "ahead of" : "behind";
    std::string text = "the server's clock is " + Duration(skew) + " " + direction + " ours";
    if (std::chrono::abs(skew) > kMaxSkew) {
      Report("clock", Verdict::kFail,
             text +
                 ": S3 refuses requests signed more than 15 min off (RequestTimeTooSkewed); "
                 "set the time right (NTP) on the server or here");
    } else if (std::chrono::abs(skew) > kSkewWarning) {
      Report("clock", Verdict::kWarn, text + ": still accepted (up to 15 min), fix NTP");
    } else {
      Report("clock", Verdict::kOk, "within " + Duration(std::chrono::abs(skew)) + " of ours");
    }
  }

  bool Credentials() {
    long status = first_reply_.status;
    S3ErrorBody error = ParseS3ErrorBody(first_reply_.body);
    if (status < 300 || error.code == "NoSuchBucket") {
      return Report("credentials", Verdict::kOk,
                    "access key " + options_.access_key + " accepted (a signed request)");
    }
    std::string said = " (HTTP " + std::to_string(status) +
                       (error.code.empty() ? "" : " " + error.code) +
                       (error.message.empty() ? "" : ": " + error.message) + ")";
    if (error.code == "RequestTimeTooSkewed") {
      return Report("credentials", Verdict::kFail,
                    "the request was refused as signed at the wrong time: see clock" + said);
    }
    if (error.code == "SignatureDoesNotMatch") {
      return Report("credentials", Verdict::kFail,
                    "the secret key is wrong for access key " + options_.access_key +
                        " (MINIO_SECRET_KEY)" + said);
    }
    if (error.code == "InvalidAccessKeyId") {
      return Report("credentials", Verdict::kFail,
                    "the server does not know access key " + options_.access_key +
                        " (MINIO_ACCESS_KEY)" + said);
    }
    if (error.code == "AccessDenied") {
      // Signed right, but not allowed to list: uploads may still work; the
      // audit needs the listing.
      list_denied_ = true;
      return Report(
          "credentials", Verdict::kWarn,
          "the keys may not list the bucket (media-sync audit needs s3:ListBucket)" + said);
    }
    return Report("credentials", Verdict::kFail, "the signed request was refused" + said);
  }

  bool Bucket() {
    S3ErrorBody error = ParseS3ErrorBody(first_reply_.body);
    if (first_reply_.status < 300 || list_denied_) {
      return Report("bucket", Verdict::kOk, "bucket " + options_.bucket + " exists");
    }
    if (error.code != "NoSuchBucket") {
      return Report(
          "bucket", Verdict::kFail,
          "unexpected reply: HTTP " + std::to_string(first_reply_.status) + " " + error.code);
    }
    if (!settings_.create_bucket) {
      return Report("bucket", Verdict::kFail, "bucket " + options_.bucket + " does not exist");
    }
    Status created = client_.CreateBucket();
    if (!created) {
      return Report("bucket", Verdict::kFail,
                    "bucket " + options_.bucket +
                        " does not exist and these keys may not create it: " +
                        created.error().message + "; create it, or use keys that may");
    }
    return Report("bucket", Verdict::kOk,
                  "bucket " + options_.bucket + " did not exist: created (as a first job would)");
  }

  bool WriteReadDelete() {
    std::string bytes(kProbeBytes, '\0');
    std::mt19937_64 random{std::random_device{}()};
    for (char& byte : bytes) byte = static_cast<char>(random());
    const std::string sha256 = Sha256Hex(bytes);
    const std::string key = std::string(kProbePrefix) + RandomHex(16);
    Hasher md5(Hasher::Algorithm::kMd5);
    md5.Update(bytes);
    Payload payload{std::span<const char>(bytes.data(), bytes.size()), sha256,
                    Base64(md5.FinishRaw())};
    auto started = std::chrono::steady_clock::now();
    auto put = client_.PutObject(key, payload, {{"sha256", sha256}});
    if (!put)
      return Report("write", Verdict::kFail, "PutObject " + key + ": " + put.error().message);
    Report("write", Verdict::kOk,
           "PutObject " + key + ", " + std::to_string(kProbeBytes) + " bytes in " +
               Millis(std::chrono::steady_clock::now() - started));

    Hasher read_hash;
    uint64_t size = 0;
    auto read = client_.GetObjectStreamed(key, [&](const char* data, size_t n) {
      read_hash.Update(data, n);
      size += n;
      return true;
    });
    std::string stored_sha256;
    if (read && read->has_value()) {
      auto it = (**read).headers.find("x-amz-meta-sha256");
      if (it != (**read).headers.end()) stored_sha256 = it->second;
    }
    const std::string got = read_hash.FinishHex();
    bool read_ok = false;
    if (!read) {
      Report("read", Verdict::kFail, "GetObject " + key + ": " + read.error().message);
    } else if (!read->has_value()) {
      Report("read", Verdict::kFail, "GetObject " + key + ": the object just written is not there");
    } else if (size != kProbeBytes || got != sha256) {
      Report("read", Verdict::kFail,
             "read back " + std::to_string(size) + " bytes hashing to " + got + ", wrote " +
                 std::to_string(kProbeBytes) + " hashing to " + sha256);
    } else if (stored_sha256 != sha256) {
      Report("read", Verdict::kFail,
             "the bytes are right but x-amz-meta-sha256 came back as '" + stored_sha256 + "'");
    } else {
      read_ok = true;
      Report("read", Verdict::kOk, "read back and verified (size, SHA-256, x-amz-meta-sha256)");
    }

    Status deleted = client_.DeleteObject(key);
    auto gone =
        deleted ? client_.HeadObject(key) : Result<std::optional<ObjectInfo>>(deleted.error());
    if (!gone) {
      Report("delete", Verdict::kFail, "DeleteObject " + key + ": " + gone.error().message);
      return false;
    }
    if (gone->has_value()) {
      Report("delete", Verdict::kFail,
             "DeleteObject " + key + " answered, yet the object is there");
      return false;
    }
    Report("delete", Verdict::kOk, "deleted, and gone");
    return read_ok;
  }

  // What the server verifies itself, as the store finds it out before it
  // trusts a server's answer alone (S3ObjectStore::DetectVerification).
  void Verification() {
    S3ObjectStore store(options_);
    auto found = store.DetectVerification();
    if (!found) {
      Report("payload-hash", Verdict::kWarn, "not known: " + found.error().message);
      Report("checksum", Verdict::kWarn, "not known: " + found.error().message);
      return;
    }
    if (found->payload_hash) {
      Report("payload-hash", Verdict::kOk, "refuses a body that does not match its signed SHA-256");
    } else {
      Report("payload-hash", Verdict::kWarn,
             "stores a body that does not match its signed SHA-256 (like s3rver): only the "
             "client keeps wrong bytes out");
    }
    if (found->checksum_sha256) {
      Report("checksum", Verdict::kOk, "refuses a wrong x-amz-checksum-sha256");
    } else {
      Report("checksum", Verdict::kWarn, "ignores a wrong x-amz-checksum-sha256");
    }
  }

  const S3Options options_;
  const BoxCheckSettings& settings_;
  const std::function<void(const CheckStep&)>& on_step_;
  S3Client client_;
  std::vector<CheckStep> steps_;

  HostPort address_;
  sockaddr_storage address_storage_{};
  socklen_t address_length_ = 0;
  int family_ = AF_INET;
  HttpResponse first_reply_;
  Clock::time_point reply_time_;
  bool list_denied_ = false;
};

}  // namespace

std::string_view ToString(CheckStep::Verdict verdict) {
  switch (verdict) {
    case Verdict::kOk:
      return "ok";
    case Verdict::kWarn:
      return "warn";
    case Verdict::kFail:
      return "FAIL";
    case Verdict::kSkipped:
      return "skipped";
  }
  return "?";
}

std::vector<CheckStep> CheckBox(const S3Options& options, const BoxCheckSettings& settings,
                                const std::function<void(const CheckStep&)>& on_step) {
  return Checker(options, settings, on_step).Run();
}

}  // namespace media_sync::s3
