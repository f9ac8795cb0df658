#include "cli/progress.h"

#include <algorithm>

namespace media_sync::cli {
namespace {

constexpr int kBarWidth = 24;
// Erase from the cursor to the end of the line.
constexpr const char* kClearLine = "\r\033[K";

}  // namespace

Progress::Progress(uint64_t total_files, uint64_t total_bytes, Settings settings)
    : total_files_(total_files), total_bytes_(total_bytes), settings_(settings) {
  // On a terminal the bar shows from the first file; plain lines wait a period.
  last_drawn_ = settings_.terminal ? started_ - settings_.redraw : started_;
}

double Progress::Seconds() const {
  return std::chrono::duration<double>(Clock::now() - started_).count();
}

std::string Progress::Line() const {
  double seconds = std::max(Seconds(), 1e-3);
  char text[256];
  std::snprintf(text, sizeof(text), "%llu/%llu files, %.1f of %.1f MB, %.1f files/s, %.1f MB/s",
                static_cast<unsigned long long>(files_),
                static_cast<unsigned long long>(total_files_), static_cast<double>(bytes_) / 1e6,
                static_cast<double>(total_bytes_) / 1e6, static_cast<double>(files_) / seconds,
                static_cast<double>(bytes_) / 1e6 / seconds);
  return text;
}

void Progress::Draw(bool force) {
  auto now = Clock::now();
  auto every = settings_.terminal ? settings_.redraw : settings_.period;
  if (!force && now - last_drawn_ < every) return;
  last_drawn_ = now;
  if (settings_.terminal) {
    int filled =
        total_files_ == 0 ? kBarWidth : static_cast<int>(kBarWidth * files_ / total_files_);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kBarWidth, '.');
    std::fprintf(stderr, "%s[%s] %s", kClearLine, bar.c_str(), Line().c_str());
    drawn_ = true;
  } else {
    std::fprintf(stderr, "progress: %s\n", Line().c_str());
  }
  std::fflush(stderr);
}

void Progress::Advance(uint64_t bytes) {
  ++files_;
  bytes_ += bytes;
  Draw(/*force=*/false);
}

void Progress::Note(FILE* stream, const std::string& line) {
  if (settings_.terminal && drawn_) std::fputs(kClearLine, stderr);
  std::fprintf(stream, "%s\n", line.c_str());
  std::fflush(stream);
  if (settings_.terminal && drawn_) Draw(/*force=*/true);
}

void Progress::Finish() {
  if (settings_.terminal && drawn_) {
    std::fputs(kClearLine, stderr);
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace media_sync::cli
