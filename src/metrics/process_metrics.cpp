#include "metrics/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace media_sync::metrics {
namespace {

struct ProcStat {
  double cpu_seconds = 0;
  double start_seconds_after_boot = 0;
  double virtual_bytes = 0;
  double resident_bytes = 0;
};

// /proc/self/stat: the command name (field 2) may hold spaces and parens, so
// fields are counted after the last ')'.
ProcStat ReadProcStat() {
  ProcStat stat;
  std::ifstream file("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return stat;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  auto ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  auto page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // After ')': field 3 is state; utime 14, stime 15, starttime 22, vsize 23, rss 24.
  for (int index = 3; fields >> field && index <= 24; ++index) {
    double value = std::strtod(field.c_str(), nullptr);
    if (index == 14 || index == 15) stat.cpu_seconds += value / ticks;
    if (index == 22) stat.start_seconds_after_boot = value / ticks;
    if (index == 23) stat.virtual_bytes = value;
    if (index == 24) stat.resident_bytes = value * page;
  }
  return stat;
}

double BootTime() {
  std::ifstream file("/proc/stat");
  std::string key;
  double value = 0;
  while (file >> key) {
    if (key == "btime") {
      file >> value;
      return value;
    }
    file.ignore(1 << 20, '\n');
  }
  return 0;
}

double OpenFds() {
  std::error_code error;
  double count = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
       it.increment(error)) {
    ++count;
  }
  return count;
}

}  // namespace

void AddProcessMetrics(Registry& registry) {
  Gauge& resident =
      registry.AddGauge("process_resident_memory_bytes", "Resident memory size in bytes.").Only();
  Gauge& virtual_memory =
      registry.AddGauge("process_virtual_memory_bytes", "Virtual memory size in bytes.").Only();
  Counter& cpu =
      registry.AddCounter("process_cpu_seconds_total", "Total user and system CPU time in seconds.")
          .Only();
  Gauge& open_fds =
      registry.AddGauge("process_open_fds", "Number of open file descriptors.").Only();
  Gauge& max_fds =
      registry.AddGauge("process_max_fds", "Maximum number of open file descriptors.").Only();
  Gauge& start_time = registry
                          .AddGauge("process_start_time_seconds",
                                    "Start time of the process since the Unix epoch in seconds.")
                          .Only();
  double boot = BootTime();
  registry.OnRender([&, boot] {
    ProcStat stat = ReadProcStat();
    resident.Set(stat.resident_bytes);
    virtual_memory.Set(stat.virtual_bytes);
    // A counter only goes up: add what was spent since the last scrape.
    cpu.Inc(std::max(0.0, stat.cpu_seconds - cpu.Value()));
    open_fds.Set(OpenFds());
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) max_fds.Set(static_cast<double>(limit.rlim_cur));
    start_time.Set(boot + stat.start_seconds_after_boot);
  });
}

}  // namespace media_sync::metrics
