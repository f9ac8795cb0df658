#include "support/cli_runner.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

namespace media_sync::testing {

CliOutcome RunCli(const LocalStack& stack, const std::string& args,
                  const std::map<std::string, std::string>& env) {
  static std::atomic<int> counter = 0;  // tests may run commands from several threads
  std::map<std::string, std::string> merged = stack.Env();
  merged["METRICS_ADDRESS"] = "";
  for (const auto& [key, value] : env) merged[key] = value;
  // A command that hangs fails the test (exit 124) instead of hanging it.
  std::string command = "timeout -k 5 300 env";
  for (const auto& [key, value] : merged) command += " " + ShellQuote(key + "=" + value);
  std::string err_path = stack.StateDir() + "/cli-" + std::to_string(getpid()) + "-" +
                         std::to_string(++counter) + ".err";
  command +=
      " " + ShellQuote(MediaSyncBinary()) + " " + args + " </dev/null 2>" + ShellQuote(err_path);
  CliOutcome outcome;
  outcome.code = RunStatus(command, &outcome.out);
  std::ifstream file(err_path);
  std::stringstream text;
  text << file.rdbuf();
  outcome.err = text.str();
  unlink(err_path.c_str());
  return outcome;
}

}  // namespace media_sync::testing
