// `media-sync enqueue`: the producer's side of the queue, and the backfill
// tool. For every file given (directories walked), as the platform's
// processor does: hash it, put it into the buffer at its content path,
// insert its media_files row (reserving its size on its box), push its job.
// Each step is safe to repeat, so enqueueing a tree twice changes nothing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "buffer/buffer_intake.h"
#include "catalog/pg_catalog.h"
#include "cli/command.h"
#include "cli/progress.h"
#include "core/hash.h"
#include "core/job.h"
#include "queue/queue_admin.h"
#include "util/fd.h"

namespace media_sync::cli {
namespace {

namespace fs = std::filesystem;
using CatalogRow = catalog::CatalogFile;

// Jobs pushed per batch (one pipelined round trip).
constexpr size_t kPushBatch = 500;

struct EnqueueFlags {
  std::vector<std::string> files;
  std::string jobs;
  std::string box;
  bool dry_run = false;
};

// A regular file found among the arguments.
struct Candidate {
  std::string path;
  uint64_t size = 0;
  bool named = false;  // given on the command line: a symlink to it is followed
};

// What the walk found: files to enqueue, and entries refused with why.
struct Walked {
  std::vector<Candidate> files;
  std::vector<std::pair<std::string, std::string>> refused;  // path, problem
  uint64_t bytes = 0;
};

bool Within(const fs::path& path, const fs::path& root) {
  std::string text = path.string();
  std::string prefix = root.string();
  if (text == prefix) return true;
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  return text.compare(0, prefix.size(), prefix) == 0;
}

std::string TypeOf(fs::file_type type) {
  switch (type) {
    case fs::file_type::fifo:
      return "FIFO";
    case fs::file_type::socket:
      return "socket";
    case fs::file_type::block:
      return "block device";
    case fs::file_type::character:
      return "character device";
    case fs::file_type::directory:
      return "directory";
    default:
      return "special file";
  }
}

// Walks one directory tree without following a symbolic link: a link whose
// target is inside the tree is skipped (the walk reaches the target itself),
// one that points out of it or nowhere is refused. Children in name order.
void WalkTree(const fs::path& root, Walked& out) {
  std::vector<fs::path> directories = {root};
  while (!directories.empty()) {
    fs::path directory = directories.back();
    directories.pop_back();
    std::error_code error;
    std::vector<fs::directory_entry> entries;
    for (fs::directory_iterator it(directory, error), end; !error && it != end;
         it.increment(error)) {
      entries.push_back(*it);
    }
    if (error) {
      out.refused.emplace_back(directory.string(), "cannot list: " + error.message());
      continue;
    }
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.path() < b.path(); });
    std::vector<fs::path> subdirectories;
    for (const auto& entry : entries) {
      const fs::path& path = entry.path();
      fs::file_status status = entry.symlink_status(error);
      if (error) {
        out.refused.emplace_back(path.string(), error.message());
        continue;
      }
      if (fs::is_regular_file(status)) {
        uint64_t size = entry.file_size(error);
        if (error) {
          out.refused.emplace_back(path.string(), error.message());
          continue;
        }
        out.files.push_back({path.string(), size, false});
        out.bytes += size;
      } else if (fs::is_directory(status)) {
        subdirectories.push_back(path);
      } else if (fs::is_symlink(status)) {
        fs::path target = fs::canonical(path, error);
        if (error) {
          std::error_code ignored;
          out.refused.emplace_back(path.string(), "dangling symbolic link (to " +
                                                      fs::read_symlink(path, ignored).string() +
                                                      "): not followed");
        } else if (!Within(target, root)) {
          out.refused.emplace_back(path.string(), "symbolic link to " + target.string() +
                                                      ", outside " + root.string() +
                                                      ": not followed");
        }
      } else {
        out.refused.emplace_back(
            path.string(), "is a " + TypeOf(status.type()) + ", not a regular file: not read");
      }
    }
    // Depth first, in name order.
    directories.insert(directories.end(), subdirectories.rbegin(), subdirectories.rend());
  }
}

Walked Walk(const std::vector<std::string>& arguments) {
  Walked out;
  for (const std::string& argument : arguments) {
    std::error_code error;
    fs::file_status status = fs::status(argument, error);  // a named symlink is followed
    if (error) {
      out.refused.emplace_back(argument, error.message());
    } else if (fs::is_directory(status)) {
      WalkTree(fs::canonical(argument, error), out);
      if (error) out.refused.emplace_back(argument, error.message());
    } else if (fs::is_regular_file(status)) {
      uint64_t size = fs::file_size(argument, error);
      if (error) {
        out.refused.emplace_back(argument, error.message());
      } else {
        out.files.push_back({argument, size, true});
        out.bytes += size;
      }
    } else {
      out.refused.emplace_back(argument,
                               "is a " + TypeOf(status.type()) + ", not a regular file: not read");
    }
  }
  return out;
}

// The extension a job may carry (core/job.cpp accepts 1-16 letters or
// digits); "" for a name without one.
Result<std::string> ExtensionOf(const std::string& path) {
  std::string name = fs::path(path).filename().string();
  auto dot = name.rfind('.');
  if (dot == std::string::npos) return std::string();
  std::string ext = name.substr(dot + 1);
  bool valid =
      !ext.empty() && ext.size() <= 16 &&
      std::all_of(ext.begin(), ext.end(), [](unsigned char c) { return std::isalnum(c) != 0; });
  if (!valid) {
    return Error::Input("extension '" + ext +
                        "' is not 1 to 16 letters or digits: rename the file to enqueue it");
  }
  return ext;
}

enum class Outcome { kQueued, kAlreadySynced, kAlreadyQueued, kDuplicate };

std::string AlreadyQueuedNote(const std::string& path, const std::string& key) {
  return "already queued: " + path + " (" + key +
         "): its job is pending, delayed, held by a worker or failed (see `media-sync failed "
         "list --grep` to requeue a failed one)";
}

struct Counts {
  uint64_t queued = 0;
  uint64_t already_synced = 0;
  uint64_t already_queued = 0;
  uint64_t duplicates = 0;
  uint64_t failed = 0;
  uint64_t bytes = 0;  // of the files queued
};

// Enqueues files one at a time; pushes their jobs in batches.
class FileEnqueuer {
 public:
  FileEnqueuer(const config::Options& options, std::optional<std::string> box, bool dry_run,
               catalog::PgCatalog& catalog, const buffer::BufferIntake& intake,
               queue::QueueAdmin& admin, Progress& progress)
      : options_(options),
        box_(std::move(box)),
        dry_run_(dry_run),
        catalog_(catalog),
        intake_(intake),
        admin_(admin),
        progress_(progress) {}

  // Per-file problems are counted and reported; an error returned is one of
  // PostgreSQL or Redis, which stops the run.
  Status Process(const Candidate& file) {
    uint64_t read = 0;
    auto outcome = Enqueue(file, read);
    progress_.Advance(read);
    if (!outcome) {
      // A file that cannot be queued is named and the rest go on; an outage
      // or a configuration error ends the command.
      if (outcome.error().kind != ErrorKind::kInput && !outcome.error().IsJobFault()) {
        return outcome.error();
      }
      ++counts_.failed;
      progress_.Note(stderr, "media-sync: enqueue: " + file.path + ": " + outcome.error().message);
      return Ok();
    }
    switch (*outcome) {
      case Outcome::kQueued:
        ++counts_.queued;
        counts_.bytes += read;
        break;
      case Outcome::kAlreadySynced:
        ++counts_.already_synced;
        break;
      case Outcome::kAlreadyQueued:
        ++counts_.already_queued;
        break;
      case Outcome::kDuplicate:
        ++counts_.duplicates;
        break;
    }
    if (batch_.size() >= kPushBatch) return Flush();
    return Ok();
  }

  Status Flush() {
    if (batch_.empty()) return Ok();
    if (auto pushed = admin_.Enqueue(batch_); !pushed) return pushed.error();
    batch_.clear();
    return Ok();
  }

  const Counts& counts() const { return counts_; }

 private:
  void Say(const std::string& line) { progress_.Note(stdout, line); }

  Result<bool> AlreadyQueued(const std::string& sha256) {
    if (!queued_) {
      auto queued = admin_.QueuedSha256s();
      if (!queued) return queued.error();
      queued_ = std::move(*queued);
    }
    return queued_->count(sha256) > 0;
  }

  Result<Outcome> Enqueue(const Candidate& file, uint64_t& read) {
    auto ext = ExtensionOf(file.path);
    if (!ext) return ext.error();
    // Never blocks (a FIFO opens at once and is refused below); a name that
    // turned into a symlink since the walk is not followed.
    int flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | (file.named ? 0 : O_NOFOLLOW);
    UniqueFd fd(open(file.path.c_str(), flags));
    if (!fd) {
      if (errno == ENOENT) return Error::Input("vanished before it could be read");
      if (errno == ELOOP) return Error::Input("is now a symbolic link: not followed");
      return Error::Input(std::string("cannot open: ") + std::strerror(errno));
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) {
      return Error::Input(std::string("cannot stat: ") + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
      return Error::Input("is a " + buffer::FileTypeName(st.st_mode) +
                          ", not a regular file: not read");
    }
    const auto size = static_cast<uint64_t>(st.st_size);
    auto sha = Sha256OfFd(fd.get(), size);
    if (!sha) return sha.error();
    read = size;

    if (auto first = seen_.find(*sha); first != seen_.end()) {
      Say("duplicate: " + file.path + " has the same content as " + first->second);
      return Outcome::kDuplicate;
    }
    seen_.emplace(*sha, file.path);

    auto row = catalog_.FindFile(*sha);
    if (!row) return row.error();
    if (row->has_value() && (*row)->synced) {
      Say("already synced: " + file.path + " (" + (*row)->s3_key + ")");
      return Outcome::kAlreadySynced;
    }
    std::string key = ContentKey(*sha, *ext);
    std::optional<std::string> box = box_;
    if (row->has_value()) {
      // The row decides: its key, its box (where its size is reserved).
      key = (*row)->s3_key;
      box = (*row)->storage_box_id;
      if ((*row)->file_size != size) {
        return Error::Input("its media_files row (sha256 " + *sha + ") says " +
                            std::to_string((*row)->file_size) + " bytes, the file has " +
                            std::to_string(size));
      }
    }
    std::string payload = MakeJobPayload(NewJob{*sha, key, options_.buffer_path + "/" + key, box,
                                                size, std::chrono::system_clock::now()});
    if (auto job = ParseJob(payload); !job) {
      return job.error().Wrap("its media_files row holds s3_key '" + key + "'");
    }

    bool queued = false;
    if (row->has_value()) {
      auto found = AlreadyQueued(*sha);
      if (!found) return found.error();
      queued = *found;
    }
    if (dry_run_) {
      if (queued) {
        Say(AlreadyQueuedNote(file.path, key));
        return Outcome::kAlreadyQueued;
      }
      Say("would queue: " + file.path + " as " + key + " (" +
          (row->has_value() ? std::string("its media_files row exists, its job is lost")
                            : "new media_files row, box " + box.value_or("(default)")) +
          ")");
      return Outcome::kQueued;
    }

    // The file first, then its row, then its job: a crash in between leaves
    // a file without row (enqueue again) or a row without job (reconcile).
    auto placed = intake_.Place(fd.get(), size, *sha, key);
    if (!placed) return placed.error();
    if (queued) {
      Say(AlreadyQueuedNote(file.path, key));
      return Outcome::kAlreadyQueued;
    }
    if (!row->has_value()) {
      auto created = catalog_.RegisterFile(*sha, key, size, box);
      if (!created) return created.error();
      if (!*created) {
        // Registered by someone else since FindFile: that row decides, as a
        // row found at first does (its key, and its box, where its size is
        // reserved and where the worker will store the object).
        auto now = catalog_.FindFile(*sha);
        if (!now) return now.error();
        if (!now->has_value()) {
          return Error::Input(
              "its media_files row appeared and vanished meanwhile: enqueue it "
              "again");
        }
        const CatalogRow& row_now = **now;
        if (row_now.synced) {
          Say("already synced: " + file.path + " (" + row_now.s3_key + ")");
          return Outcome::kAlreadySynced;
        }
        if (row_now.s3_key != key) {
          return Error::Input("registered meanwhile under another key, " + row_now.s3_key +
                              ": enqueue it again");
        }
        if (row_now.file_size != size) {
          return Error::Input("registered meanwhile with " + std::to_string(row_now.file_size) +
                              " bytes, the file has " + std::to_string(size));
        }
        if (row_now.storage_box_id != box) {
          Say("registered meanwhile on box " + row_now.storage_box_id.value_or("(default)") + ": " +
              file.path + " is queued for that box");
          payload = MakeJobPayload(NewJob{*sha, key, options_.buffer_path + "/" + key,
                                          row_now.storage_box_id, size,
                                          std::chrono::system_clock::now()});
        }
      }
    }
    batch_.push_back(std::move(payload));
    return Outcome::kQueued;
  }

  const config::Options& options_;
  const std::optional<std::string> box_;
  const bool dry_run_;
  catalog::PgCatalog& catalog_;
  const buffer::BufferIntake& intake_;
  queue::QueueAdmin& admin_;
  Progress& progress_;
  std::map<std::string, std::string> seen_;                // sha256 -> first path with it, this run
  std::optional<std::unordered_set<std::string>> queued_;  // read once, when first needed
  std::vector<std::string> batch_;
  Counts counts_;
};

// Reads and validates JSON job lines; nothing is pushed when one is bad.
Result<std::vector<std::string>> ReadJobLines(const std::string& jobs_file) {
  std::ifstream stream;
  std::istream* in = &std::cin;
  if (jobs_file != "-") {
    stream.open(jobs_file);
    if (!stream) return Error::Input("cannot read " + jobs_file);
    in = &stream;
  }
  std::vector<std::string> payloads;
  std::string line;
  int number = 0;
  while (std::getline(*in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (auto job = ParseJob(line); !job) return job.error().Wrap("line " + std::to_string(number));
    payloads.push_back(line);
  }
  return payloads;
}

int EnqueueFiles(const config::Options& options, const EnqueueFlags& flags) {
  if (auto status = options.RequireDatabase(); !status) {
    return ConfigError(status.error().Wrap("enqueue of files records them in media_files"));
  }
  catalog::PgCatalog catalog(options.database_conninfo, {});
  std::optional<std::string> box;
  if (!flags.box.empty()) {
    // The worker refuses jobs naming such a box: none is queued.
    if (auto problem = BoxIdProblem(flags.box)) {
      std::fprintf(stderr, "media-sync: enqueue: --box: %s; nothing was enqueued\n",
                   problem->c_str());
      return kExitUsage;
    }
    auto endpoint = catalog.BoxEndpoint(flags.box);
    if (!endpoint) return Failed("enqueue", endpoint.error());
    if (!endpoint->has_value()) {
      std::fprintf(stderr,
                   "media-sync: enqueue: unknown storage box '%s' (no such id in storage_boxes); "
                   "nothing was enqueued\n",
                   flags.box.c_str());
      return kExitUsage;
    }
    box = flags.box;
  }
  auto intake = buffer::BufferIntake::Create(options.buffer_path);
  if (!intake) return ConfigError(intake.error().Wrap("MEDIA_BUFFER_PATH"));
  queue::QueueAdmin admin(options.redis);

  Walked walked = Walk(flags.files);
  Progress progress(walked.files.size() + walked.refused.size(), walked.bytes,
                    Progress::Settings{isatty(STDERR_FILENO) == 1});
  Counts refused;
  for (const auto& [path, problem] : walked.refused) {
    ++refused.failed;
    progress.Advance(0);
    progress.Note(stderr,
                  std::string("media-sync: enqueue: ").append(path).append(": ").append(problem));
  }
  FileEnqueuer enqueuer(options, box, flags.dry_run, catalog, *intake, admin, progress);
  Status status = Ok();
  for (const Candidate& file : walked.files) {
    status = enqueuer.Process(file);
    if (!status) break;
  }
  if (status) status = enqueuer.Flush();
  progress.Finish();

  Counts counts = enqueuer.counts();
  counts.failed += refused.failed;
  std::printf(
      "%s %llu, already synced %llu, already queued %llu, duplicates %llu, failed %llu, bytes "
      "%llu, seconds %.2f\n",
      flags.dry_run ? "would queue" : "queued", static_cast<unsigned long long>(counts.queued),
      static_cast<unsigned long long>(counts.already_synced),
      static_cast<unsigned long long>(counts.already_queued),
      static_cast<unsigned long long>(counts.duplicates),
      static_cast<unsigned long long>(counts.failed), static_cast<unsigned long long>(counts.bytes),
      progress.Seconds());
  std::fflush(stdout);
  if (!status) {
    return Failed("enqueue", status.error().Wrap(
                                 "stopped (files placed and registered so far without their job "
                                 "are found by `media-sync reconcile`)"));
  }
  return counts.failed == 0 ? kExitOk : kExitFailed;
}

int Enqueue(const config::Options& options, const EnqueueFlags& flags) {
  std::vector<std::string> lines;
  if (!flags.jobs.empty()) {
    auto read = ReadJobLines(flags.jobs);
    if (!read) return Failed("enqueue", read.error());
    lines = std::move(*read);
  }
  if (flags.files.empty() && lines.empty()) {
    std::fprintf(stderr, "media-sync: enqueue: no jobs given (FILE|DIR... or --jobs)\n");
    return kExitUsage;
  }
  int code = kExitOk;
  if (!flags.files.empty()) code = EnqueueFiles(options, flags);
  if (code == kExitUsage || lines.empty()) return code;
  queue::QueueAdmin admin(options.redis);
  if (auto pushed = admin.Enqueue(lines); !pushed) return Failed("enqueue", pushed.error());
  std::printf("enqueued %zu job lines onto media:sync:pending\n", lines.size());
  return code;
}

}  // namespace

Command AddEnqueueCommand(CLI::App& app) {
  auto flags = std::make_shared<EnqueueFlags>();
  Command command;
  command.app = app.add_subcommand(
      "enqueue",
      "Enqueue files (placed into the buffer, registered, queued), directories recursively, or "
      "JSON job lines.");
  command.app->add_option("files", flags->files,
                          "Files or directories, anywhere; each file is hashed, linked or copied "
                          "into the buffer at its content path, and queued");
  command.app->add_option("--jobs", flags->jobs,
                          "File of JSON job lines ('-' for stdin), validated, pushed as they are");
  command.app->add_option("--box", flags->box,
                          "storage_box_id of new files (must exist in storage_boxes; default: "
                          "none, MINIO_ENDPOINT)");
  command.app->add_flag("--dry-run", flags->dry_run,
                        "Hash and report what would be done; change nothing");
  command.app->footer(
      "Symbolic links inside a directory are not followed out of it; FIFOs, sockets and devices\n"
      "are refused. A file already synced, or whose job is already queued, is not queued again.\n"
      "Exit code 0 when every file was queued (or already synced or queued), 1 otherwise.\n"
      "Needs DATABASE_URL and MEDIA_BUFFER_PATH for files.\n"
      "Examples:\n"
      "  media-sync enqueue --box russia-1 /mnt/archive/2023   # backfill a tree\n"
      "  media-sync enqueue --dry-run photo.jpg\n"
      "  media-sync enqueue --jobs jobs.jsonl");
  command.run = [flags](const config::Options& options) { return Enqueue(options, *flags); };
  return command;
}

}  // namespace media_sync::cli
