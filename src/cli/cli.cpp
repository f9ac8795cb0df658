#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <vector>

#include "cli/command.h"
#include "config/options.h"
#include "util/log.h"

namespace media_sync::cli {

int ConfigError(const Error& error) {
  std::fprintf(stderr, "media-sync: configuration error: %s\n", error.message.c_str());
  return kExitUsage;
}

int Failed(const std::string& what, const Error& error) {
  std::fprintf(stderr, "media-sync: %s: %s\n", what.c_str(), error.message.c_str());
  return kExitFailed;
}

Command AddConfigCommand(CLI::App& app) {
  Command command;
  command.app = app.add_subcommand("config", "Print the effective configuration, secrets masked.");
  command.app->footer("Example:\n  media-sync config");
  command.run = [](const config::Options& options) {
    for (const auto& [name, value] : config::Describe(options)) {
      std::printf("%-28s %s\n", name.c_str(), value.c_str());
    }
    return kExitOk;
  };
  return command;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "media-sync: moves media files from the local SSD buffer to S3-compatible storage.\n"
      "Configuration comes from the environment (see `media-sync config`)."};
  app.set_version_flag("--version", std::string("media-sync ") + MEDIA_SYNC_VERSION);
  app.require_subcommand(1);

  std::vector<Command> commands = {
      AddRunCommand(app),       AddStatusCommand(app), AddEnqueueCommand(app),
      AddReconcileCommand(app), AddFailedCommand(app), AddSchemaCommand(app),
      AddAuditCommand(app),     AddBoxesCommand(app),  AddMigrateCommand(app),
      AddWebCommand(app),       AddConfigCommand(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  auto options = config::LoadOptions(config::ProcessEnvironment());
  if (!options) return ConfigError(options.error());
  SetupLogging(options->log_level, options->log_format == config::LogFormat::kJson);
  signal(SIGPIPE, SIG_IGN);

  for (const auto& command : commands) {
    if (command.app->parsed()) return command.run(*options);
  }
  return kExitUsage;
}

}  // namespace media_sync::cli
