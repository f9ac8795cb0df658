// Runs the built `media-sync` command line against a LocalStack, as an
// operator would from a shell, for the tests of the operator commands.
#pragma once

#include <map>
#include <string>

#include "support/local_stack.h"

namespace media_sync::testing {

struct CliOutcome {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
  std::string all() const { return out + err; }
};

// `media-sync <args>` with the stack's environment plus `env` (which
// overrides; an empty value sets the variable empty). `args` is shell text
// (quote paths with ShellQuote). stdin is /dev/null: never a terminal. A
// command still running after 300 s is killed (exit 124).
CliOutcome RunCli(const LocalStack& stack, const std::string& args,
                  const std::map<std::string, std::string>& env = {});

// The same on a pseudo-terminal (util-linux `script`): stdin, stdout and
// stderr are a terminal, `input` is typed into it; `out` holds everything
// the terminal showed.
CliOutcome RunCliOnTerminal(const LocalStack& stack, const std::string& args,
                            const std::string& input = "",
                            const std::map<std::string, std::string>& env = {});

}  // namespace media_sync::testing
