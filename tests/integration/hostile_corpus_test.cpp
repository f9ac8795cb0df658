// The hostile job corpus (tests/corpus/jobs/, format in its README.md) against
// one real worker (docs/contract.md §2 guarantee 5, "bad input is contained"):
// every case is pushed, interleaved with good jobs, into one `media-sync run
// --drain`, which must exit 0 in bounded time. Then, for each case, either a
// failed entry whose error says what is wrong and which keeps the payload, or
// a correct sync; every good job synced; and nothing outside the buffer read,
// changed, deleted or uploaded (sentinel files beside the buffer, checked to
// the byte and the timestamp, and no object under their hashes).
//
// The cases that change a file during its upload run on their own, one
// worker each, with a single upload buffer so the change lands mid-upload.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <source_location>
#include <sstream>
#include <thread>

#include "core/job.h"
#include "support/job_shape.h"
#include "support/worker_harness.h"

namespace media_sync::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr uint64_t kMiB = 1024 * 1024;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary)
      .write(content.data(), static_cast<std::streamsize>(content.size()));
}

std::string RandomBytes(size_t size, uint64_t seed) {
  std::string content(size, '\0');
  std::mt19937_64 random(seed);
  for (char& c : content) c = static_cast<char>(random());
  return content;
}

// Hashed here rather than with the project's helper: the test checks the
// worker's hashing, so it does not borrow it.
std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

// FNV-1a: a stable seed per case name, so adding a case changes no other.
uint64_t SeedOf(const std::string& text) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

// Binary-safe access to the stack's Redis (redis-cli takes arguments through
// a shell, which cannot carry a NUL byte).
class RedisClient {
 public:
  explicit RedisClient(const LocalStack& stack)
      : context_(redisConnect("127.0.0.1", std::stoi(stack.Get("STACK_REDIS_PORT")))) {}
  ~RedisClient() { redisFree(context_); }
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  void LPush(const std::string& key, const std::string& value) {
    auto* reply = static_cast<redisReply*>(
        redisCommand(context_, "LPUSH %b %b", key.data(), key.size(), value.data(), value.size()));
    ASSERT_NE(reply, nullptr) << context_->errstr;
    EXPECT_EQ(reply->type, REDIS_REPLY_INTEGER);
    freeReplyObject(reply);
  }

  std::vector<std::string> LRange(const std::string& key) {
    std::vector<std::string> values;
    auto* reply =
        static_cast<redisReply*>(redisCommand(context_, "LRANGE %b 0 -1", key.data(), key.size()));
    if (reply == nullptr) {
      ADD_FAILURE() << context_->errstr;
      return values;
    }
    for (size_t i = 0; i < reply->elements; ++i) {
      values.emplace_back(reply->element[i]->str, reply->element[i]->len);
    }
    freeReplyObject(reply);
    return values;
  }

 private:
  redisContext* context_;
};

// A file outside the buffer that no job may read, change or delete, with
// timestamps set in the past: atime two days ago (after mtime), so a read
// would move it even under relatime; under noatime the check is silent and
// the content, size, mtime and ctime checks still hold.
struct Sentinel {
  std::string path;
  std::string content;
  struct stat before {};

  static Sentinel Make(const std::string& path, std::string content) {
    WriteFile(path, content);
    auto now = std::chrono::system_clock::now();
    auto seconds_ago = [&](int s) {
      auto t = std::chrono::system_clock::to_time_t(now - std::chrono::seconds(s));
      return timespec{t, 0};
    };
    timespec times[2] = {seconds_ago(2 * 86400), seconds_ago(3 * 86400)};
    EXPECT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
    Sentinel sentinel{path, std::move(content)};
    EXPECT_EQ(stat(path.c_str(), &sentinel.before), 0);
    return sentinel;
  }

  void ExpectUntouched(std::source_location at = std::source_location::current()) const {
    ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
    struct stat after {};
    ASSERT_EQ(stat(path.c_str(), &after), 0) << path << " was deleted";
    EXPECT_EQ(ReadFile(path), content) << path;
    EXPECT_EQ(after.st_size, before.st_size) << path;
    EXPECT_EQ(after.st_ino, before.st_ino) << path;
    EXPECT_EQ(after.st_nlink, before.st_nlink) << path;
    EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec) << path << " was written";
    EXPECT_EQ(after.st_ctim.tv_sec, before.st_ctim.tv_sec) << path << " was changed";
    EXPECT_EQ(after.st_atim.tv_sec, before.st_atim.tv_sec) << path << " was read";
  }
};

// One file of tests/corpus/jobs/, made real: its media, setup, payload.
struct Case {
  std::string id;  // "07-absolute-path-elsewhere"
  Json spec;
  std::map<std::string, std::string> vars;
  std::optional<Json> media_job;  // the job MediaFactory made for the case's file
  std::string media_path;         // where that file is after setup
  std::string payload;            // as pushed
  std::string sha256;             // lower-case hash the case's job names ("" if none)
  bool skipped = false;
  std::string skip_reason;

  std::string Outcome() const { return spec["expect"]["outcome"].get<std::string>(); }
  std::string ErrorText() const { return spec["expect"].value("error_contains", ""); }
};

// Every case of tests/corpus/jobs/, in file name order.
std::vector<Case> LoadCorpus() {
  std::vector<Case> cases;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(SourcePath("tests/corpus/jobs"))) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    Case c;
    c.id = file.stem().string();
    c.spec = Json::parse(ReadFile(file.string()));
    cases.push_back(std::move(c));
  }
  return cases;
}

// The ids of the cases that change their file during its upload.
std::vector<std::string> DuringUploadCaseIds() {
  std::vector<std::string> ids;
  for (const Case& c : LoadCorpus()) {
    if (c.spec.contains("during_upload")) ids.push_back(c.id);
  }
  return ids;
}

class HostileCorpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_.Reset();
    media_.AddTwoBoxes();
    outside_ = stack_.StateDir() + "/outside";
    sibling_ = stack_.BufferDir() + "-sibling";
    fs::remove_all(outside_);
    fs::remove_all(sibling_);
    // secret.jpg has a media file's size, so a job can name it with its own
    // hash, size and key: read by mistake, it would sync.
    secret_ = Sentinel::Make(outside_ + "/secret.jpg", RandomBytes(2048, 1));
    keep_out_ = Sentinel::Make(outside_ + "/nested/keep-out.jpg", RandomBytes(4096, 2));
    linked_content_ = RandomBytes(3000, 3);
    WriteFile(outside_ + "/linked.jpg", linked_content_);
  }

  void TearDown() override {
    fs::remove_all(outside_);
    fs::remove_all(sibling_);
  }

  // "{name}" → value for every placeholder; an unknown one fails the case.
  static std::string Substitute(const Case& c, const std::string& text) {
    static const std::regex kPlaceholder(R"(\{([A-Za-z0-9_]+)\})");
    std::string out;
    auto begin = std::sregex_iterator(text.begin(), text.end(), kPlaceholder);
    size_t last = 0;
    for (auto it = begin; it != std::sregex_iterator(); ++it) {
      out.append(text, last, static_cast<size_t>(it->position()) - last);
      auto value = c.vars.find((*it)[1]);
      if (value == c.vars.end()) {
        ADD_FAILURE() << c.id << ": unknown placeholder " << it->str();
        out += it->str();
      } else {
        out += value->second;
      }
      last = static_cast<size_t>(it->position() + it->length());
    }
    return out + text.substr(last);
  }

  // Strings substituted throughout; a string that is one size placeholder
  // becomes that number.
  static Json SubstituteJson(const Case& c, const Json& value) {
    static const std::set<std::string> kNumbers = {"{file_size}", "{secret_size}", "{linked_size}"};
    if (value.is_string()) {
      const std::string& text = value.get_ref<const std::string&>();
      if (kNumbers.count(text) > 0) return Json(std::stoull(Substitute(c, text)));
      return Json(Substitute(c, text));
    }
    if (value.is_structured()) {
      Json out = value;
      for (auto it = out.begin(); it != out.end(); ++it) *it = SubstituteJson(c, *it);
      return out;
    }
    return value;
  }

  void DefineVars(Case& c) {
    const std::string buffer = stack_.BufferDir();
    const std::string secret_sha = Sha256Hex(secret_.content);
    const std::string linked_sha = Sha256Hex(linked_content_);
    c.vars = {{"case", c.id},
              {"buffer", buffer},
              {"outside", outside_},
              {"secret_path", secret_.path},
              {"secret_sha256", secret_sha},
              {"secret_size", std::to_string(secret_.content.size())},
              {"secret_key", ContentKey(secret_sha, "jpg")},
              {"linked_path", outside_ + "/linked.jpg"},
              {"linked_sha256", linked_sha},
              {"linked_size", std::to_string(linked_content_.size())},
              {"linked_key", ContentKey(linked_sha, "jpg")}};
    if (c.media_job) {
      const Json& job = *c.media_job;
      std::string sha = job["sha256"];
      std::string upper = sha;
      std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
      std::string local_path = job["local_path"];
      c.vars.insert({{"sha256", sha},
                     {"SHA256", upper},
                     {"SHA256_KEY", "media/" + upper.substr(0, 2) + "/" + upper.substr(2, 2) + "/" +
                                        upper + ".jpg"},
                     {"s3_key", job["s3_key"]},
                     {"local_path", local_path},
                     {"relative_path", local_path.substr(buffer.size() + 1)},
                     {"file_size", std::to_string(job["file_size"].get<uint64_t>())}});
    }
  }

  // Runs the case's setup actions; false (with a reason) when this machine
  // cannot build the setup (mknod without the privilege).
  bool RunSetup(Case& c) {
    for (const Json& raw_action : c.spec.value("setup", Json::array())) {
      Json action = SubstituteJson(c, raw_action);
      auto parent_of = [](const std::string& path) {
        fs::create_directories(fs::path(path).parent_path());
      };
      if (action.contains("symlink")) {
        std::string path = action["symlink"];
        parent_of(path);
        fs::create_symlink(action["to"].get<std::string>(), path);
      } else if (action.contains("hardlink")) {
        std::string path = action["hardlink"];
        parent_of(path);
        fs::create_hard_link(action["to"].get<std::string>(), path);
      } else if (action.contains("fifo")) {
        std::string path = action["fifo"];
        parent_of(path);
        EXPECT_EQ(mkfifo(path.c_str(), 0644), 0) << c.id;
      } else if (action.contains("socket")) {
        std::string path = action["socket"];
        parent_of(path);
        // sun_path holds 108 bytes, less than the buffer's path may take:
        // bind through a descriptor of the parent directory instead.
        int dir = open(fs::path(path).parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        EXPECT_GE(dir, 0) << c.id;
        std::string short_path =
            "/proc/self/fd/" + std::to_string(dir) + "/" + fs::path(path).filename().string();
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        EXPECT_LT(short_path.size(), sizeof(address.sun_path)) << c.id;
        std::strncpy(address.sun_path, short_path.c_str(), sizeof(address.sun_path) - 1);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0)
            << c.id << ": " << std::strerror(errno);
        close(fd);  // the socket file stays; nobody listens on it
        close(dir);
      } else if (action.contains("mkdir")) {
        fs::create_directories(action["mkdir"].get<std::string>());
      } else if (action.contains("device")) {
        std::string path = action["device"];
        parent_of(path);
        if (mknod(path.c_str(), S_IFCHR | 0644, makedev(1, 3)) != 0) {
          c.skip_reason = "mknod: " + std::string(std::strerror(errno));
          return false;
        }
      } else if (action.contains("move")) {
        std::string to = action["to"];
        parent_of(to);
        fs::rename(action["move"].get<std::string>(), to);
        if (action["move"] == c.media_path) c.media_path = to;
      } else if (action.contains("copy")) {
        std::string to = action["to"];
        parent_of(to);
        fs::copy_file(action["copy"].get<std::string>(), to);
      } else if (action.contains("remove")) {
        fs::remove(action["remove"].get<std::string>());
      } else if (action.contains("catalog_row")) {
        const Json& row = action["catalog_row"];
        stack_.Sql("INSERT INTO media_files (sha256, s3_key, file_size) VALUES ('" +
                   row["sha256"].get<std::string>() + "', '" + row["s3_key"].get<std::string>() +
                   "', " + std::to_string(row["file_size"].get<uint64_t>()) +
                   ") ON CONFLICT DO NOTHING");
      } else {
        ADD_FAILURE() << c.id << ": unknown setup action " << raw_action.dump();
      }
    }
    return true;
  }

  void BuildPayload(Case& c) {
    const Json& spec = c.spec;
    if (spec.contains("payload")) {
      c.payload = Substitute(c, spec["payload"]);
    } else if (spec.contains("payload_bytes")) {
      // Each character U+0000-U+00FF stands for one byte.
      std::string text = Substitute(c, spec["payload_bytes"]);
      std::u32string wide;
      for (size_t i = 0; i < text.size();) {  // decode the UTF-8 of the case file
        unsigned char lead = static_cast<unsigned char>(text[i]);
        int length = lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
        char32_t point = length == 1 ? lead : lead & (0xff >> (length + 1));
        for (int k = 1; k < length; ++k) point = (point << 6) | (text[i + k] & 0x3f);
        wide.push_back(point);
        i += static_cast<size_t>(length);
      }
      for (char32_t point : wide) {
        EXPECT_LE(point, 0xffu) << c.id << ": payload_bytes holds only U+0000-U+00FF";
        c.payload.push_back(static_cast<char>(point));
      }
    } else if (spec.contains("generate") && spec["generate"].contains("nested_arrays")) {
      size_t depth = spec["generate"]["nested_arrays"];
      c.payload = std::string(depth, '[') + std::string(depth, ']');
    } else {
      Json job = c.media_job ? *c.media_job : Json::object();
      const Json changes = SubstituteJson(c, c.spec.value("job", Json::object()));
      for (const auto& [field, value] : changes.items()) {
        if (value.is_null() && field != "storage_box_id") {
          job.erase(field);
        } else {
          job[field] = value;
        }
      }
      job["corpus_case"] = c.id;  // an unknown field: kept, and it tells entries apart
      if (spec.contains("generate") && spec["generate"].contains("padding_bytes")) {
        job["padding"] = std::string(spec["generate"]["padding_bytes"].get<size_t>(), 'p');
      }
      c.payload = job.dump();
    }
    Json parsed = Json::parse(c.payload, nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object() && parsed.contains("sha256") &&
        parsed["sha256"].is_string()) {
      std::string sha = parsed["sha256"];
      std::transform(sha.begin(), sha.end(), sha.begin(), ::tolower);
      if (IsLowerHexSha256(sha)) c.sha256 = sha;
    }
  }

  // Media, placeholders, setup and payload of a case, ready to push.
  void Prepare(Case& c) {
    Json media = c.spec.contains("media")
                     ? c.spec["media"]
                     : Json{{"size", 2048}, {"box", "box-a"}, {"ext", "jpg"}, {"row", true}};
    if (!media.is_null()) {
      std::optional<std::string> box;
      if (media.value("box", Json("box-a")).is_string()) box = media.value("box", "box-a");
      c.media_job = media_.Make(media.value("size", uint64_t{2048}), box, SeedOf(c.id),
                                media.value("ext", "jpg"), media.value("row", true));
      c.media_path = (*c.media_job)["local_path"];
    }
    DefineVars(c);
    if (!RunSetup(c)) {
      c.skipped = true;
      return;
    }
    BuildPayload(c);
  }

  // Which payload a failed entry keeps: the raw bytes, or the job object
  // (without the failure fields and the retry count the worker rewrites).
  static std::string Kept(const Json& entry) {
    if (entry.contains("raw")) return "raw:" + entry["raw"].get<std::string>();
    if (entry.contains("raw_base64")) {
      return "raw:" + DecodeBase64(entry["raw_base64"].get<std::string>()).value_or("?");
    }
    Json job = entry;
    for (const char* field : {"error", "failed_at", "attempts", "retry_count"}) job.erase(field);
    return "job:" + job.dump();
  }

  static std::string KeptFormOf(const Case& c) {
    if (c.payload.size() > kMaxJobBytes) return "raw:" + c.payload;
    Json parsed = Json::parse(c.payload, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object() || Depth(parsed) > kMaxJobDepth) {
      return "raw:" + c.payload;
    }
    for (const char* field : {"error", "failed_at", "attempts", "retry_count"}) {
      parsed.erase(field);
    }
    return "job:" + parsed.dump();
  }

  // Keys of the objects stored under a hash (the last part of the key holds
  // it), in either box.
  std::vector<std::string> ObjectsFor(const std::string& sha256) const {
    std::vector<std::string> found;
    for (const char* box : {"box-a", "box-b"}) {
      for (const std::string& key : media_.ObjectKeys(box)) {
        if (key.substr(key.rfind('/') + 1).find(sha256) != std::string::npos) {
          found.push_back(std::string(box) + ":" + key);
        }
      }
    }
    return found;
  }

  bool RowSynced(const std::string& sha256) const {
    return Trim(stack_.Sql("SELECT count(*) FROM media_files WHERE sha256 = '" + sha256 +
                           "' AND synced_at IS NOT NULL")) == "1";
  }

  // The case's own file, what it says, and where it went.
  void ExpectSynced(const Case& c, std::source_location at = std::source_location::current()) {
    ::testing::ScopedTrace caller(at.file_name(), static_cast<int>(at.line()), "called from here");
    ASSERT_FALSE(c.sha256.empty()) << c.id;
    Json payload = Json::parse(c.payload);
    Json stored = payload;
    stored["sha256"] = c.sha256;
    EXPECT_TRUE(media_.ObjectStored(stored)) << c.id << ": no object with the file's bytes";
    EXPECT_TRUE(RowSynced(c.sha256)) << c.id;
    if (!c.media_path.empty()) {
      EXPECT_FALSE(fs::exists(c.media_path)) << c.id << ": not deleted";
    }
    // The name the job gave is gone too (a hard link's, say).
    std::string local_path = payload["local_path"];
    if (!local_path.starts_with("/")) local_path = stack_.BufferDir() + "/" + local_path;
    EXPECT_FALSE(fs::exists(fs::symlink_status(local_path))) << c.id << ": not deleted";
  }

  LocalStack& stack_ = SharedStack();
  MediaFactory media_{stack_};
  std::string outside_;
  std::string sibling_;
  Sentinel secret_;
  Sentinel keep_out_;
  std::string linked_content_;
};

TEST_F(HostileCorpusTest, EveryCaseIsContainedAndGoodJobsAroundItSync) {
  std::vector<Case> cases;
  for (Case& c : LoadCorpus()) {
    if (!c.spec.contains("during_upload")) cases.push_back(std::move(c));
  }
  ASSERT_GE(cases.size(), 30u);

  RedisClient redis(stack_);
  std::vector<Json> good_jobs;
  size_t expected_failed = 0;
  size_t expected_synced = 0;
  const char* kBoxes[] = {"box-a", "box-b", nullptr};
  for (size_t i = 0; i < cases.size(); ++i) {
    Case& c = cases[i];
    ASSERT_NO_FATAL_FAILURE(Prepare(c));
    if (c.skipped) {
      std::printf("corpus case %s skipped: %s\n", c.id.c_str(), c.skip_reason.c_str());
      continue;
    }
    ASSERT_NO_FATAL_FAILURE(redis.LPush("media:sync:pending", c.payload));
    (c.Outcome() == "failed" ? expected_failed : expected_synced) += 1;
    // A good job after every case, over both boxes and the default endpoint.
    const char* box = kBoxes[i % 3];
    good_jobs.push_back(media_.Make(1000 + i, box ? std::optional<std::string>(box) : std::nullopt,
                                    7000 + i, i % 2 ? "mp4" : "jpg"));
    media_.Push(good_jobs.back());
  }
  // Armed now that the setups are done (one copies the secret beside the
  // buffer, which reads it); the sibling copy is guarded too.
  secret_ = Sentinel::Make(secret_.path, secret_.content);
  keep_out_ = Sentinel::Make(keep_out_.path, keep_out_.content);
  std::optional<Sentinel> sibling_copy;
  if (fs::exists(sibling_ + "/secret.jpg")) {
    sibling_copy = Sentinel::Make(sibling_ + "/secret.jpg", secret_.content);
  }
  const std::string linked_before = ReadFile(outside_ + "/linked.jpg");

  WorkerProcess worker(
      stack_, {{"MAX_RETRIES", "1"}, {"RETRY_DELAY_SECONDS", "0"}, {"SYNC_CONCURRENCY", "8"}},
      {"run", "--drain"});
  auto code = worker.WaitExit(300s);
  const std::string log = worker.Log();
  ASSERT_EQ(code, 0) << "the worker crashed or hung\n"
                     << log.substr(log.size() - std::min<size_t>(log.size(), 20000));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("Sanitizer")));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("runtime error:")));
  EXPECT_THAT(log,
              HasSubstr("summary: synced " + std::to_string(expected_synced + good_jobs.size()) +
                        ", already synced 0, failed " + std::to_string(expected_failed)));

  // Each failed entry belongs to exactly one case and keeps its payload.
  std::vector<Json> entries;
  for (const std::string& text : redis.LRange("media:sync:failed")) {
    Json entry = Json::parse(text, nullptr, false);
    ASSERT_FALSE(entry.is_discarded())
        << "a failed entry that is not JSON: " << text.substr(0, 500);
    entries.push_back(std::move(entry));
  }
  EXPECT_EQ(entries.size(), expected_failed);
  std::map<std::string, std::vector<const Json*>> entries_by_kept;
  for (const Json& entry : entries) entries_by_kept[Kept(entry)].push_back(&entry);

  for (const Case& c : cases) {
    if (c.skipped) continue;
    SCOPED_TRACE(c.id);
    if (c.Outcome() == "synced") {
      ExpectSynced(c);
      continue;
    }
    ASSERT_EQ(c.Outcome(), "failed");
    auto found = entries_by_kept.find(KeptFormOf(c));
    ASSERT_NE(found, entries_by_kept.end())
        << "no failed entry keeps the payload " << c.payload.substr(0, 300);
    ASSERT_EQ(found->second.size(), 1u);
    const Json& entry = *found->second.front();
    // What each case ends as, for whoever reads the test's output.
    std::printf("%-48s %s\n", c.id.c_str(),
                entry["error"].get<std::string>().substr(0, 160).c_str());
    EXPECT_THAT(entry["error"].get<std::string>(), HasSubstr(c.ErrorText()));
    EXPECT_TRUE(entry.contains("failed_at"));
    EXPECT_TRUE(entry.contains("attempts"));
    if (!c.sha256.empty()) {
      EXPECT_THAT(ObjectsFor(c.sha256), ::testing::IsEmpty());
    }
    // The case's file, where one is left (never read through a FIFO or link).
    if (!c.media_path.empty() && c.media_job &&
        fs::is_regular_file(fs::symlink_status(c.media_path))) {
      EXPECT_EQ(Sha256Hex(ReadFile(c.media_path)), (*c.media_job)["sha256"]) << "changed";
    }
  }

  for (const Json& job : good_jobs) {
    EXPECT_TRUE(media_.ObjectStored(job)) << job["s3_key"];
    EXPECT_FALSE(media_.LocalExists(job)) << job["local_path"];
  }

  // Nothing outside the buffer was read, changed, deleted or uploaded.
  secret_.ExpectUntouched();
  keep_out_.ExpectUntouched();
  if (sibling_copy) sibling_copy->ExpectUntouched();
  EXPECT_THAT(ObjectsFor(Sha256Hex(secret_.content)), ::testing::IsEmpty());
  EXPECT_THAT(ObjectsFor(Sha256Hex(keep_out_.content)), ::testing::IsEmpty());
  // The hard link's outside name keeps its bytes after the buffer's name went.
  EXPECT_EQ(ReadFile(outside_ + "/linked.jpg"), linked_before);
  std::set<std::string> outside_names;
  for (const auto& entry : fs::recursive_directory_iterator(outside_)) {
    outside_names.insert(entry.path().string());
  }
  EXPECT_EQ(outside_names,
            (std::set<std::string>{outside_ + "/linked.jpg", outside_ + "/nested",
                                   outside_ + "/nested/keep-out.jpg", outside_ + "/secret.jpg"}));

  EXPECT_EQ(media_.Len("media:sync:pending"), 0);
  EXPECT_EQ(media_.DelayedCount(), 0);
  EXPECT_EQ(stack_.RedisCli("KEYS 'media:sync:processing:*'"), "\n");
}

// Bytes the worker has read through read()/pread() (and sockets), from
// /proc/<pid>/io; nullopt once the process is gone.
std::optional<uint64_t> BytesRead(pid_t pid) {
  std::ifstream io("/proc/" + std::to_string(pid) + "/io");
  std::string key;
  uint64_t value = 0;
  while (io >> key >> value) {
    if (key == "rchar:") return value;
  }
  return std::nullopt;
}

// A file changed while its multipart upload is under way. One 5 MiB upload
// buffer and one part in flight: once the worker has read its first part,
// the storage server is frozen, so the worker can read no further than the
// part after it while the file is changed; then the server is thawed and the
// upload goes on over the changed file.
// One test per case: a worker of its own for each.
class HostileUploadTest : public HostileCorpusTest,
                          public ::testing::WithParamInterface<std::string> {};

TEST_F(HostileCorpusTest, ThreeCasesChangeTheirFileDuringItsUpload) {
  EXPECT_EQ(DuringUploadCaseIds().size(), 3u);
}

TEST_P(HostileUploadTest, FileChangedDuringItsUploadIsNeverStoredAsSomethingElse) {
  std::vector<Case> cases = LoadCorpus();
  auto found =
      std::find_if(cases.begin(), cases.end(), [](const Case& c) { return c.id == GetParam(); });
  ASSERT_NE(found, cases.end());
  Case& c = *found;
  RedisClient redis(stack_);
  ASSERT_NO_FATAL_FAILURE(Prepare(c));
  ASSERT_NO_FATAL_FAILURE(redis.LPush("media:sync:pending", c.payload));
  const Json& change = c.spec["during_upload"];
  const uint64_t size = (*c.media_job)["file_size"];

  WorkerProcess worker(stack_,
                       {{"MAX_RETRIES", "0"},
                        {"SYNC_CONCURRENCY", "1"},
                        {"S3_MULTIPART_THRESHOLD", "5MiB"},
                        {"S3_PART_SIZE", "5MiB"},
                        {"S3_PART_PARALLELISM", "1"},
                        {"S3_BUFFER_POOL", "5MiB"}},
                       {"run", "--drain"});
  // The first part read: 5 MiB at once, far more than anything else the
  // worker reads before it.
  std::optional<uint64_t> read;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while ((read = BytesRead(worker.pid())) && *read < 4 * kMiB &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(read && *read >= 4 * kMiB) << "the upload never started\n" << worker.Log();
  {
    ScopedFreeze frozen(stack_.Pid("s3"));
    const uint64_t read_when_changed = BytesRead(worker.pid()).value_or(0);
    if (change.contains("truncate_to")) {
      uint64_t to = change["truncate_to"];
      ASSERT_LT(read_when_changed, to) << "the worker had already read past the change";
      ASSERT_EQ(truncate(c.media_path.c_str(), static_cast<off_t>(to)), 0);
    } else if (change.contains("append")) {
      ASSERT_LT(read_when_changed, size) << "the upload had already read the whole file";
      std::ofstream(c.media_path, std::ios::binary | std::ios::app)
          << RandomBytes(change["append"].get<size_t>(), 9);
    } else {
      uint64_t at = change["overwrite_at"];
      ASSERT_LT(read_when_changed, at) << "the worker had already read past the change";
      int fd = open(c.media_path.c_str(), O_WRONLY);
      ASSERT_GE(fd, 0);
      const char changed[] = "changed during the upload";
      ASSERT_EQ(pwrite(fd, changed, sizeof(changed), static_cast<off_t>(at)),
                static_cast<ssize_t>(sizeof(changed)));
      close(fd);
    }
  }  // thawed
  ASSERT_EQ(worker.WaitExit(180s), 0) << worker.Log();

  std::vector<std::string> failed = redis.LRange("media:sync:failed");
  if (c.Outcome() == "synced") {
    EXPECT_THAT(failed, ::testing::IsEmpty());
    ExpectSynced(c);
    return;
  }
  if (c.Outcome() == "synced_file_kept") {
    // The job's bytes were read before the change: stored and recorded,
    // so the job is done; the changed file stays for a person to look at.
    EXPECT_THAT(failed, ::testing::IsEmpty());
    EXPECT_THAT(worker.Log(), HasSubstr(c.spec["expect"]["note_contains"].get<std::string>()));
    EXPECT_TRUE(fs::exists(c.media_path));
    EXPECT_TRUE(media_.ObjectStored(Json::parse(c.payload)));
    EXPECT_TRUE(RowSynced(c.sha256));
    return;
  }
  ASSERT_EQ(failed.size(), 1u) << worker.Log();
  Json entry = Json::parse(failed.front());
  EXPECT_THAT(entry["error"].get<std::string>(), HasSubstr(c.ErrorText()));
  EXPECT_EQ(Kept(entry), KeptFormOf(c));
  // The changed file stays for a person to look at.
  EXPECT_TRUE(fs::exists(c.media_path));
  // Under the key: the job's bytes (the change came after they were read),
  // or nothing; never the changed file.
  Json stored = Json::parse(c.payload);
  if (c.spec["expect"]["object"] == "stored") {
    EXPECT_TRUE(media_.ObjectStored(stored));
    EXPECT_TRUE(RowSynced(c.sha256));
  } else {
    EXPECT_THAT(ObjectsFor(c.sha256), ::testing::IsEmpty());
    EXPECT_FALSE(RowSynced(c.sha256));
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, HostileUploadTest, ::testing::ValuesIn(DuringUploadCaseIds()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name;
                           for (char c : info.param)
                             name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

}  // namespace
}  // namespace media_sync::testing
