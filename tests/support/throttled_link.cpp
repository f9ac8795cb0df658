#include "support/throttled_link.h"

#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX kill, sigprocmask
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace media_sync::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

}  // namespace

ThrottledLink::ThrottledLink(const LocalStack& stack, const std::string& upstream, uint64_t rate,
                             std::chrono::milliseconds one_way_delay) {
  static int counter = 0;
  state_dir_ = stack.StateDir() + "/throttled-link-" + std::to_string(getpid()) + "-" +
               std::to_string(++counter);
  std::filesystem::create_directories(state_dir_);
  std::vector<std::string> argv_storage = {
      "node",        SourcePath("tests/support/throttled_link.js"),
      "--upstream",  upstream,
      "--rate",      std::to_string(rate),
      "--state-dir", state_dir_,
      "--delay-ms",  std::to_string(one_way_delay.count())};
  std::vector<char*> argv;
  argv.reserve(argv_storage.size() + 1);
  for (auto& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvp("node", argv.data());
    _exit(127);
  }
  const std::string port_file = state_dir_ + "/port";
  if (!WaitUntil([&] { return std::filesystem::exists(port_file); }, std::chrono::seconds(10))) {
    std::fprintf(stderr, "throttled link to %s did not start\n", upstream.c_str());
    std::abort();
  }
  endpoint_ = "127.0.0.1:" + Trim(ReadFile(port_file));
}

ThrottledLink::~ThrottledLink() {
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  std::error_code ignored;
  std::filesystem::remove_all(state_dir_, ignored);
}

uint64_t ThrottledLink::bytes_sent() const {
  std::string text = Trim(ReadFile(state_dir_ + "/sent"));
  return text.empty() ? 0 : std::stoull(text);
}

}  // namespace media_sync::testing
