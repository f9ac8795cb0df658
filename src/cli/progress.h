// Progress of a long CLI command over many files (`media-sync enqueue`).
//
// On a terminal (isatty(stderr)) one line on stderr is redrawn in place:
// a bar, files done/total, files/s and MB/s. Elsewhere (a log, a pipe) a
// plain line is written every `period`, so logs stay readable. Per-file
// messages go through Note(), which keeps the bar off their lines.
//
// Thread-safety: none; one thread reports.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace media_sync::cli {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  struct Settings {
    bool terminal = false;
    std::chrono::milliseconds redraw{100};   // on a terminal
    std::chrono::milliseconds period{5000};  // plain lines elsewhere
  };

  Progress(uint64_t total_files, uint64_t total_bytes, Settings settings);

  // One more file dealt with, whatever the outcome; `bytes` read for it.
  void Advance(uint64_t bytes);
  // A line about one file, on `stream`, below the bar.
  void Note(FILE* stream, const std::string& line);
  // Clears the bar (terminal); the caller prints its summary next.
  void Finish();

  double Seconds() const;

 private:
  void Draw(bool force);
  std::string Line() const;

  const uint64_t total_files_;
  const uint64_t total_bytes_;
  const Settings settings_;
  const Clock::time_point started_ = Clock::now();
  Clock::time_point last_drawn_{};
  uint64_t files_ = 0;
  uint64_t bytes_ = 0;
  bool drawn_ = false;
};

}  // namespace media_sync::cli
