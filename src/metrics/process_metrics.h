// The standard process metrics of Prometheus client libraries, read from
// /proc at scrape time: process_resident_memory_bytes,
// process_virtual_memory_bytes, process_cpu_seconds_total, process_open_fds,
// process_max_fds, process_start_time_seconds.
#pragma once

#include "metrics/registry.h"

namespace media_sync::metrics {

void AddProcessMetrics(Registry& registry);

}  // namespace media_sync::metrics
