// The subcommands of the media-sync command line, one file each. Every
// Add*Command registers its flags on the CLI11 app and returns what to run
// once the configuration is loaded; cli.cpp only parses and dispatches.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "config/options.h"
#include "core/result.h"

namespace media_sync::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the command ran and failed
inline constexpr int kExitUsage = 2;   // bad usage or bad configuration

struct Command {
  CLI::App* app = nullptr;  // owned by the parent CLI::App
  std::function<int(const config::Options&)> run;
};

// Prints "media-sync: configuration error: ..." and returns kExitUsage.
int ConfigError(const Error& error);
// Prints "media-sync: <what>: <message>" and returns kExitFailed.
int Failed(const std::string& what, const Error& error);

Command AddRunCommand(CLI::App& app);        // run_command.cpp
Command AddStatusCommand(CLI::App& app);     // status_command.cpp
Command AddEnqueueCommand(CLI::App& app);    // enqueue_command.cpp
Command AddReconcileCommand(CLI::App& app);  // reconcile_command.cpp
Command AddFailedCommand(CLI::App& app);     // failed_command.cpp
Command AddSchemaCommand(CLI::App& app);     // schema_command.cpp
Command AddConfigCommand(CLI::App& app);     // cli.cpp
Command AddAuditCommand(CLI::App& app);      // audit_command.cpp
Command AddBoxesCommand(CLI::App& app);      // boxes_command.cpp
Command AddMigrateCommand(CLI::App& app);    // migrate_command.cpp

}  // namespace media_sync::cli
