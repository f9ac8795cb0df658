#include "metrics/registry.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace media_sync::metrics {
namespace {

std::string_view TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"} plus an optional extra label (le for histogram buckets).
std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ',';
    out += std::string(extra_name) + "=\"" + std::string(extra_value) + "\"";
  }
  return out + "}";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::Observe(double value) {
  size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snapshot.cumulative.push_back(running);
  }
  // Read from the buckets so that count always equals the +Inf bucket, even
  // while observations land during the read.
  snapshot.count = running;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) bounds.push_back(bound);
  return bounds;
}

std::unique_ptr<Registry::Entry> Registry::NewEntry(std::string name, std::string help, Type type) {
  auto entry = std::make_unique<Entry>();
  entry->name = std::move(name);
  entry->help = std::move(help);
  entry->type = type;
  return entry;
}

Registry::Entry& Registry::Add(std::unique_ptr<Entry> entry) {
  MutexLock lock(mu_);
  entries_.push_back(std::move(entry));
  return *entries_.back();
}

Family<Counter>& Registry::AddCounter(std::string name, std::string help,
                                      std::vector<std::string> label_names) {
  auto entry = NewEntry(std::move(name), std::move(help), Type::kCounter);
  entry->counters = std::make_unique<Family<Counter>>(std::move(label_names),
                                                      [] { return std::make_unique<Counter>(); });
  return *Add(std::move(entry)).counters;
}

Family<Gauge>& Registry::AddGauge(std::string name, std::string help,
                                  std::vector<std::string> label_names) {
  auto entry = NewEntry(std::move(name), std::move(help), Type::kGauge);
  entry->gauges = std::make_unique<Family<Gauge>>(std::move(label_names),
                                                  [] { return std::make_unique<Gauge>(); });
  return *Add(std::move(entry)).gauges;
}

Family<Histogram>& Registry::AddHistogram(std::string name, std::string help,
                                          std::vector<std::string> label_names,
                                          const std::vector<double>& bounds) {
  auto entry = NewEntry(std::move(name), std::move(help), Type::kHistogram);
  entry->histograms = std::make_unique<Family<Histogram>>(
      std::move(label_names), [bounds] { return std::make_unique<Histogram>(bounds); });
  return *Add(std::move(entry)).histograms;
}

void Registry::OnRender(std::function<void()> refresh) {
  MutexLock lock(mu_);
  refreshers_.push_back(std::move(refresh));
}

std::string Registry::Render() {
  MutexLock lock(mu_);
  for (const auto& refresh : refreshers_) refresh();
  std::string out;
  for (const auto& entry : entries_) {
    out += "# HELP " + entry->name + " " + EscapeHelp(entry->help) + "\n";
    out += "# TYPE " + entry->name + " " + std::string(TypeName(entry->type)) + "\n";
    switch (entry->type) {
      case Type::kCounter:
        entry->counters->ForEach([&](const auto& values, const Counter& counter) {
          out += entry->name + LabelSet(entry->counters->label_names(), values) + " " +
                 FormatValue(counter.Value()) + "\n";
        });
        break;
      case Type::kGauge:
        entry->gauges->ForEach([&](const auto& values, const Gauge& gauge) {
          out += entry->name + LabelSet(entry->gauges->label_names(), values) + " " +
                 FormatValue(gauge.Value()) + "\n";
        });
        break;
      case Type::kHistogram:
        entry->histograms->ForEach([&](const auto& values, const Histogram& histogram) {
          const auto& names = entry->histograms->label_names();
          Histogram::Snapshot snapshot = histogram.Read();
          for (size_t i = 0; i <= snapshot.bounds.size(); ++i) {
            std::string le = i < snapshot.bounds.size() ? FormatValue(snapshot.bounds[i]) : "+Inf";
            out += entry->name + "_bucket" + LabelSet(names, values, "le", le) + " " +
                   std::to_string(snapshot.cumulative[i]) + "\n";
          }
          out += entry->name + "_sum" + LabelSet(names, values) + " " + FormatValue(snapshot.sum) +
                 "\n";
          out += entry->name + "_count" + LabelSet(names, values) + " " +
                 std::to_string(snapshot.count) + "\n";
        });
        break;
    }
  }
  return out;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char text[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(text, sizeof(text), "%.0f", value);
  } else {
    std::snprintf(text, sizeof(text), "%.15g", value);
  }
  return text;
}

}  // namespace media_sync::metrics
