#include "cli/cli.h"

namespace media_sync::cli {

int Main(int, char**) { return 0; }

}  // namespace media_sync::cli
