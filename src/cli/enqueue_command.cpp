// `media-sync enqueue`: the producer's side of the queue.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/command.h"
#include "core/job.h"
#include "queue/queue_admin.h"
#include "util/fd.h"
#include "util/hash.h"

namespace media_sync::cli {
namespace {

// A job for a file already in the buffer: hashes it and derives key and size.
Result<std::string> JobForFile(const std::string& path, const std::optional<std::string>& box) {
  std::string absolute = path;
  if (absolute.empty() || absolute.front() != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) return Error::JobPermanent("getcwd failed");
    absolute = std::string(cwd) + "/" + path;
  }
  UniqueFd fd(open(absolute.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return Error::JobPermanent(path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Error::JobPermanent(path + ": not a regular file");
  }
  auto sha = Sha256OfFd(fd.get(), static_cast<uint64_t>(st.st_size));
  if (!sha) return sha.error().Wrap(path);
  auto slash = absolute.rfind('/');
  auto dot = absolute.rfind('.');
  std::string ext = dot != std::string::npos && dot > slash ? absolute.substr(dot + 1) : "";
  return MakeJobPayload(NewJob{*sha, ContentKey(*sha, ext), absolute, box,
                               static_cast<uint64_t>(st.st_size),
                               std::chrono::system_clock::now()});
}

int Enqueue(const config::Options& options, const std::vector<std::string>& files,
            const std::string& jobs_file, const std::optional<std::string>& box) {
  std::vector<std::string> payloads;
  for (const auto& file : files) {
    auto job = JobForFile(file, box);
    if (!job) return Failed("enqueue", job.error());
    payloads.push_back(std::move(*job));
  }
  if (!jobs_file.empty()) {
    std::ifstream stream;
    std::istream* in = &std::cin;
    if (jobs_file != "-") {
      stream.open(jobs_file);
      if (!stream) return Failed("enqueue", Error::JobPermanent("cannot read " + jobs_file));
      in = &stream;
    }
    std::string line;
    int number = 0;
    while (std::getline(*in, line)) {
      ++number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (auto job = ParseJob(line); !job) {
        return Failed("enqueue", job.error().Wrap("line " + std::to_string(number)));
      }
      payloads.push_back(line);
    }
  }
  if (payloads.empty()) {
    std::fprintf(stderr, "media-sync: enqueue: no jobs given (FILE... or --jobs)\n");
    return kExitUsage;
  }
  queue::QueueAdmin admin(options.redis);
  if (auto pushed = admin.Enqueue(payloads); !pushed) return Failed("enqueue", pushed.error());
  std::printf("enqueued %zu jobs onto media:sync:pending\n", payloads.size());
  return kExitOk;
}

struct EnqueueFlags {
  std::vector<std::string> files;
  std::string jobs;
  std::string box;
};

}  // namespace

Command AddEnqueueCommand(CLI::App& app) {
  auto flags = std::make_shared<EnqueueFlags>();
  Command command;
  command.app = app.add_subcommand(
      "enqueue", "Push sync jobs: for files already in the buffer, or JSON lines of jobs.");
  command.app->add_option("files", flags->files, "Files in the buffer (hashed to build each job)");
  command.app->add_option("--jobs", flags->jobs,
                          "File of JSON job lines ('-' for stdin), validated");
  command.app->add_option("--box", flags->box, "storage_box_id for the FILE jobs");
  command.app->footer(
      "Examples:\n  media-sync enqueue --box russia-1 "
      "/var/cache/osint-media-buffer/media/ab/c1/x.jpg\n"
      "  media-sync enqueue --jobs jobs.jsonl");
  command.run = [flags](const config::Options& options) {
    std::optional<std::string> box;
    if (!flags->box.empty()) box = flags->box;
    return Enqueue(options, flags->files, flags->jobs, box);
  };
  return command;
}

}  // namespace media_sync::cli
