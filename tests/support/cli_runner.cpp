#include "support/cli_runner.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

namespace media_sync::testing {
namespace {

// `env VAR=value... media-sync <args>` with the stack's environment.
std::string CommandLine(const LocalStack& stack, const std::string& args,
                        const std::map<std::string, std::string>& env) {
  std::map<std::string, std::string> merged = stack.Env();
  merged["METRICS_ADDRESS"] = "";
  for (const auto& [key, value] : env) merged[key] = value;
  std::string command = "env";
  for (const auto& [key, value] : merged) command += " " + ShellQuote(key + "=" + value);
  return command + " " + ShellQuote(MediaSyncBinary()) + " " + args;
}

}  // namespace

CliOutcome RunCli(const LocalStack& stack, const std::string& args,
                  const std::map<std::string, std::string>& env) {
  static std::atomic<int> counter = 0;  // tests may run commands from several threads
  std::string err_path = stack.StateDir() + "/cli-" + std::to_string(getpid()) + "-" +
                         std::to_string(++counter) + ".err";
  // A command that hangs fails the test (exit 124) instead of hanging it.
  std::string command =
      "timeout -k 5 300 " + CommandLine(stack, args, env) + " </dev/null 2>" + ShellQuote(err_path);
  CliOutcome outcome;
  outcome.code = RunStatus(command, &outcome.out);
  std::ifstream file(err_path);
  std::stringstream text;
  text << file.rdbuf();
  outcome.err = text.str();
  unlink(err_path.c_str());
  return outcome;
}

CliOutcome RunCliOnTerminal(const LocalStack& stack, const std::string& args,
                            const std::string& input,
                            const std::map<std::string, std::string>& env) {
  std::string command = "printf %s " + ShellQuote(input) + " | timeout -k 5 300 script -qec " +
                        ShellQuote(CommandLine(stack, args, env)) + " /dev/null";
  CliOutcome outcome;
  outcome.code = RunStatus(command, &outcome.out);
  return outcome;
}

}  // namespace media_sync::testing
