// Sizes as operators read them, in one convention everywhere the command
// line shows a size or a rate: decimal units (1 KB = 1000 bytes), as the web
// console, disk vendors and S3 consoles show them. "0 B", "512 B", "4.1 KB",
// "1.5 GB", up to PB.
#pragma once

#include <string>

namespace media_sync {

std::string HumanBytes(double bytes);

}  // namespace media_sync
