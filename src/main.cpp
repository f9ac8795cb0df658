#include "cli/cli.h"

int main(int argc, char** argv) { return media_sync::cli::Main(argc, argv); }
