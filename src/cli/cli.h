// The media-sync command line: run | status | enqueue | reconcile | failed | schema |
// config.
#pragma once

namespace media_sync::cli {

// Parses argv, runs the subcommand, returns the process exit code:
// 0 success, 1 the command failed, 2 bad usage or bad configuration.
int Main(int argc, char** argv);

}  // namespace media_sync::cli
