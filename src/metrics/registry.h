// A small Prometheus metrics registry: counters, gauges and histograms in
// families with fixed label names, rendered in the text exposition format
// (version 0.0.4) that Prometheus scrapes and `promtool check metrics`
// accepts.
//
// Thread-safety: every call is safe from any thread. Observing a metric is a
// few atomic operations; Family::With takes a short lock, so hot paths keep
// the reference it returns. Families and their children live as long as the
// registry and never move.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/mutex.h"

namespace media_sync::metrics {

class Counter {
 public:
  void Inc(double amount = 1) { value_.fetch_add(amount, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount) { value_.fetch_add(amount, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `bounds`: upper bounds of the buckets, ascending; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Exponential bucket bounds: start, start*factor, ... (count bounds).
std::vector<double> ExponentialBuckets(double start, double factor, int count);

enum class Type { kCounter, kGauge, kHistogram };

template <typename Metric>
class Family {
 public:
  using Factory = std::function<std::unique_ptr<Metric>()>;
  Family(std::vector<std::string> label_names, Factory factory)
      : label_names_(std::move(label_names)), factory_(std::move(factory)) {}

  // The child with these label values (in label_names order), made on first
  // use. The caller keeps label sets bounded (no ids, no paths).
  Metric& With(std::initializer_list<std::string_view> values) EXCLUDES(mu_) {
    std::vector<std::string> key(values.begin(), values.end());
    MutexLock lock(mu_);
    auto& slot = children_[key];
    if (!slot) slot = factory_();
    return *slot;
  }
  Metric& Only() { return With({}); }

  const std::vector<std::string>& label_names() const { return label_names_; }
  // Visits every child under the family's lock.
  void ForEach(const std::function<void(const std::vector<std::string>&, const Metric&)>& visit)
      EXCLUDES(mu_) {
    MutexLock lock(mu_);
    for (const auto& [values, metric] : children_) visit(values, *metric);
  }

 private:
  const std::vector<std::string> label_names_;
  const Factory factory_;
  Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_ GUARDED_BY(mu_);
};

class Registry {
 public:
  // Names follow Prometheus conventions: counters end in _total, units are
  // base units (_seconds, _bytes). Registering a name twice is a bug.
  Family<Counter>& AddCounter(std::string name, std::string help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(std::string name, std::string help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>& AddHistogram(std::string name, std::string help,
                                  std::vector<std::string> label_names,
                                  const std::vector<double>& bounds);
  // Runs at every Render, before the families are written: for values read
  // on demand (process metrics).
  void OnRender(std::function<void()> refresh) EXCLUDES(mu_);

  // The whole registry in the text exposition format.
  std::string Render() EXCLUDES(mu_);

 private:
  struct Entry {
    std::string name;
    std::string help;
    Type type;
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Gauge>> gauges;
    std::unique_ptr<Family<Histogram>> histograms;
  };
  static std::unique_ptr<Entry> NewEntry(std::string name, std::string help, Type type);
  // Registers the entry, its family already set (a Render may run at once).
  Entry& Add(std::unique_ptr<Entry> entry) EXCLUDES(mu_);

  Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ GUARDED_BY(mu_);
  std::vector<std::function<void()>> refreshers_ GUARDED_BY(mu_);
};

// Prometheus's escaping of a label value (backslash, quote, newline).
std::string EscapeLabelValue(std::string_view value);
// A sample value: integers without a fraction, +Inf/-Inf/NaN spelled out.
std::string FormatValue(double value);

}  // namespace media_sync::metrics
