#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "observability/names.hpp"

namespace crew {

// -- labels and snapshots -----------------------------------------------------

/// Label pairs of one series. Families store them sorted by key, so the
/// identity of a series does not depend on the order the caller used.
using label_set = std::vector<std::pair<std::string, std::string>>;

/// Kind of a metric family. Values start at 1, as for every crew enum.
enum class metric_type : uint8_t { counter = 1, gauge, histogram };

/// "counter", "gauge" or "histogram" (the Prometheus TYPE words).
const char* to_string(metric_type type) noexcept;

/// Snapshot of one series. Counters and gauges fill `value`; histograms fill
/// `bounds`, `bucket_counts` (non-cumulative, `bounds.size() + 1` entries,
/// the last being the overflow bucket), `sum` and `count`.
struct metric_sample {
  label_set labels;
  double value = 0;
  std::vector<double> bounds;
  std::vector<uint64_t> bucket_counts;
  double sum = 0;
  uint64_t count = 0;
};

/// Snapshot of one family: the only input of the serializers.
struct metric_family {
  std::string name;
  std::string help;
  metric_type type = metric_type::counter;
  std::vector<metric_sample> samples;
};

/// pi-crew's default histogram buckets (milliseconds-oriented).
const std::vector<double>& default_buckets();

/// Estimates quantile `q` from histogram buckets exactly as pi-crew does
/// (inventory §7.1): NaN without data; `q` clamped to [0, 1];
/// target = max(1, q·count); the first bucket whose cumulative count reaches
/// the target is interpolated linearly between the previous bound (0 for the
/// first bucket) and its own bound. The overflow bucket's upper edge is
/// max(lower, sum / count). `counts` are non-cumulative with
/// `bounds.size() + 1` entries; a size mismatch yields NaN.
double bucket_quantile(const std::vector<double>& bounds,
                       const std::vector<uint64_t>& counts, double sum,
                       uint64_t count, double q);

/// Quantile of a histogram sample, see `bucket_quantile`.
double quantile(const metric_sample& sample, double q);

// -- primitives ---------------------------------------------------------------

/// Monotonic counter. `inc` ignores non-finite and negative deltas: a
/// counter is exported as a monotonic sum (Prometheus `counter`, OTLP
/// `isMonotonic: true`), so it must never go down. (pi-crew accepts negative
/// deltas; that would break `rate()` downstream.)
class counter {
public:
  /// Adds `delta`; lock-free.
  void inc(double delta = 1) noexcept;

  /// Current value.
  double value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

private:
  std::atomic<double> value_{0};
};

/// Value that can go up and down. Non-finite arguments are ignored.
class gauge {
public:
  /// Replaces the value; lock-free.
  void set(double value) noexcept;

  /// Adds `delta` (may be negative); lock-free.
  void add(double delta) noexcept;

  /// Current value.
  double value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

private:
  std::atomic<double> value_{0};
};

/// Distribution over fixed buckets. A value goes to the first bucket whose
/// bound is >= the value, or to the implicit overflow (`+Inf`) bucket.
class histogram {
public:
  /// Takes the upper bounds in any order: they are sorted and de-duplicated,
  /// as pi-crew does (a caller-supplied `[0,1,2,3,5,10]` works unchanged).
  /// Throws `std::invalid_argument` for a non-finite bound (`+Inf` is always
  /// implicit). An empty list leaves only the overflow bucket.
  explicit histogram(std::vector<double> bounds = default_buckets());

  histogram(const histogram&) = delete;
  histogram& operator=(const histogram&) = delete;

  /// Records `value`; lock-free. Non-finite values are ignored.
  void observe(double value) noexcept;

  /// Sorted, de-duplicated upper bounds (without `+Inf`).
  /// Adds observations bucketed elsewhere with the same bounds (`counts`
  /// non-cumulative, one per bound plus overflow); ignored on a size
  /// mismatch. Lets a hot loop bucket locally and publish in batches.
  void merge(const std::vector<uint64_t>& counts, double sum) noexcept;

  const std::vector<double>& bounds() const noexcept { return bounds_; }

  /// Non-cumulative per-bucket counts, `bounds().size() + 1` entries.
  std::vector<uint64_t> bucket_counts() const;

  /// Sum of all observed values.
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

  /// Number of observations (the sum of the bucket counts).
  uint64_t count() const noexcept;

  /// Snapshot whose `count` equals the sum of its `bucket_counts`.
  metric_sample collect() const;

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// -- families -----------------------------------------------------------------

/// Type-erased part of a family, as seen by the registry.
class family_base {
public:
  family_base(std::string name, std::string help, metric_type type)
      : name_(std::move(name)), help_(std::move(help)), type_(type) {
    // nop
  }

  virtual ~family_base() = default;

  /// Dotted metric name (`crew.run.count`).
  const std::string& name() const noexcept { return name_; }

  /// Help text given by the first registration.
  const std::string& help() const noexcept { return help_; }

  /// Kind of the metrics in this family.
  metric_type type() const noexcept { return type_; }

  /// Snapshot of all series, ordered by their (sorted) label sets.
  virtual metric_family collect() const = 0;

protected:
  /// Validates label names, rejects duplicate keys and sorts by key. Throws
  /// `std::invalid_argument`.
  label_set normalize(label_set labels) const;

private:
  std::string name_;
  std::string help_;
  metric_type type_;
};

/// Maps label sets to metrics of type `T` (`counter`, `gauge` or
/// `histogram`). A mutex guards the map only; the returned references are
/// stable and their updates take no lock.
template <class T>
class family : public family_base {
public:
  family(std::string name, std::string help, std::vector<double> bounds = {})
      : family_base(std::move(name), std::move(help), type_of()),
        bounds_(std::move(bounds)) {
    // nop
  }

  /// Returns the metric for `labels`, creating it on first use. The
  /// reference stays valid until `remove(labels)` or the family dies; keep it
  /// and update it without further lookups. Throws `std::invalid_argument`
  /// for an invalid or duplicate label name.
  T& add(label_set labels) {
    auto key = normalize(std::move(labels));
    std::lock_guard guard{mtx_};
    auto i = metrics_.find(key);
    if (i == metrics_.end()) {
      std::unique_ptr<T> ptr;
      if constexpr (std::is_same_v<T, histogram>)
        ptr = std::make_unique<T>(bounds_);
      else
        ptr = std::make_unique<T>();
      i = metrics_.emplace(std::move(key), std::move(ptr)).first;
    }
    return *i->second;
  }

  /// Checks whether a series for `labels` exists (label order irrelevant).
  bool has(const label_set& labels) const {
    auto key = sorted(labels);
    std::lock_guard guard{mtx_};
    return metrics_.count(key) != 0;
  }

  /// Destroys the series for `labels`, invalidating references to it.
  void remove(const label_set& labels) {
    auto key = sorted(labels);
    std::lock_guard guard{mtx_};
    metrics_.erase(key);
  }

  /// Number of series.
  size_t size() const {
    std::lock_guard guard{mtx_};
    return metrics_.size();
  }

  /// Histogram bounds shared by all series (empty for counters and gauges).
  /// Adds observations bucketed elsewhere with the same bounds (`counts`
  /// non-cumulative, one per bound plus overflow); ignored on a size
  /// mismatch. Lets a hot loop bucket locally and publish in batches.
  void merge(const std::vector<uint64_t>& counts, double sum) noexcept;

  const std::vector<double>& bounds() const noexcept { return bounds_; }

  metric_family collect() const override {
    metric_family result{name(), help(), type(), {}};
    std::lock_guard guard{mtx_};
    result.samples.reserve(metrics_.size());
    for (auto& [labels, metric] : metrics_) {
      if constexpr (std::is_same_v<T, histogram>) {
        auto& sample = result.samples.emplace_back(metric->collect());
        sample.labels = labels;
      } else {
        auto& sample = result.samples.emplace_back();
        sample.labels = labels;
        sample.value = metric->value();
      }
    }
    return result;
  }

private:
  static constexpr metric_type type_of() noexcept {
    if constexpr (std::is_same_v<T, counter>)
      return metric_type::counter;
    else if constexpr (std::is_same_v<T, gauge>)
      return metric_type::gauge;
    else
      return metric_type::histogram;
  }

  static label_set sorted(label_set labels) {
    std::sort(labels.begin(), labels.end());
    return labels;
  }

  std::vector<double> bounds_;
  mutable std::mutex mtx_;
  std::map<label_set, std::unique_ptr<T>> metrics_;
};

// -- registry -----------------------------------------------------------------

/// Owns metric families of one session (no global singleton). Lookups are
/// get-or-create by name and guarded by a mutex; they belong at startup, the
/// hot path works on the references they return.
class metric_registry {
public:
  metric_registry() = default;
  metric_registry(const metric_registry&) = delete;
  metric_registry& operator=(const metric_registry&) = delete;

  /// Gets or creates the counter family `name`. Throws
  /// `std::invalid_argument` if `name` breaks `is_valid_metric_name` or is
  /// already registered with another type. The first `help` wins.
  family<counter>& counter_family(std::string name, std::string help);

  /// Gets or creates the gauge family `name`; errors as `counter_family`.
  family<gauge>& gauge_family(std::string name, std::string help);

  /// Gets or creates the histogram family `name`; errors as
  /// `counter_family`, plus a non-finite bound. The first creator's bounds
  /// win, as in pi-crew.
  family<histogram>& histogram_family(std::string name, std::string help,
                                      std::vector<double> bounds
                                      = default_buckets());

  /// Snapshots every family in registration order.
  std::vector<metric_family> collect() const;

private:
  template <class T>
  family<T>& get_or_create(std::string name, std::string help,
                           std::vector<double> bounds);

  mutable std::mutex mtx_;
  std::vector<std::unique_ptr<family_base>> families_;
};

} // namespace crew
