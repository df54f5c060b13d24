#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "observability/names.hpp"

namespace crew {

// -- labels and snapshots -----------------------------------------------------

/// Label pairs of one series. Families store them sorted by key, so the
/// identity of a series does not depend on the order the caller used.
using label_set = std::vector<std::pair<std::string, std::string>>;

/// A label pair that refers to strings owned by the caller: lookups of an
/// existing series copy nothing.
using label_ref = std::pair<std::string_view, std::string_view>;

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

/// Upper bounds of histogram buckets, validated once and shared by every
/// series of a family (a series then costs no copy of them).
class histogram_bounds {
public:
  /// Takes the bounds in any order: they are sorted and de-duplicated, as
  /// pi-crew does (a caller-supplied `[0,1,2,3,5,10]` works unchanged).
  /// Throws `std::invalid_argument` for a non-finite bound (`+Inf` is always
  /// implicit). An empty list leaves only the overflow bucket.
  explicit histogram_bounds(std::vector<double> bounds = default_buckets());

  /// Sorted, de-duplicated upper bounds (without `+Inf`).
  const std::vector<double>& values() const noexcept { return *values_; }

private:
  std::shared_ptr<const std::vector<double>> values_;
};

/// Distribution over fixed buckets. A value goes to the first bucket whose
/// bound is >= the value, or to the implicit overflow (`+Inf`) bucket.
class histogram {
public:
  /// Normalizes `bounds` as `histogram_bounds` does; same errors.
  explicit histogram(std::vector<double> bounds = default_buckets());

  /// Shares bounds validated before (a family's).
  explicit histogram(histogram_bounds bounds);

  histogram(const histogram&) = delete;
  histogram& operator=(const histogram&) = delete;

  /// Records `value`; lock-free. Non-finite values are ignored.
  void observe(double value) noexcept;

  /// Adds observations bucketed elsewhere with the same bounds (`counts`
  /// non-cumulative, one per bound plus overflow); ignored on a size
  /// mismatch. Lets a hot loop bucket locally and publish in batches.
  void merge(const std::vector<uint64_t>& counts, double sum) noexcept;

  /// Sorted, de-duplicated upper bounds (without `+Inf`).
  const std::vector<double>& bounds() const noexcept {
    return bounds_.values();
  }

  /// Non-cumulative per-bucket counts, `bounds().size() + 1` entries.
  std::vector<uint64_t> bucket_counts() const;

  /// Sum of all observed values.
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

  /// Number of observations (the sum of the bucket counts).
  uint64_t count() const noexcept;

  /// Snapshot whose `count` equals the sum of its `bucket_counts`.
  metric_sample collect() const;

private:
  /// Buckets held in the object itself: the catalogue's histograms have at
  /// most 15, so creating a series allocates no separate bucket array.
  static constexpr size_t inline_buckets = 16;

  histogram_bounds bounds_;
  std::array<std::atomic<uint64_t>, inline_buckets> local_;
  std::unique_ptr<std::atomic<uint64_t>[]> heap_;
  std::atomic<uint64_t>* counts_;
  std::atomic<double> sum_{0};
};

// -- families -----------------------------------------------------------------

/// The identity of a series for lookups: label references sorted by key and
/// their hash. Refers to the caller's strings and copies the references only
/// when they arrive unsorted (on the stack for up to 4 labels).
class label_key {
public:
  explicit label_key(std::span<const label_ref> labels);

  explicit label_key(const label_set& labels);

  label_key(const label_key&) = delete;
  label_key& operator=(const label_key&) = delete;

  /// The labels, sorted by key.
  std::span<const label_ref> labels() const noexcept { return view_; }

  /// Hash of the sorted labels, equal for equal label sets.
  size_t hash() const noexcept { return hash_; }

  /// Checks whether `x` (sorted by key) holds the same labels.
  bool same(const label_set& x) const noexcept;

private:
  label_ref* storage(size_t n);
  static size_t hash_of(std::span<const label_ref> labels) noexcept;

  std::array<label_ref, 4> local_;
  std::vector<label_ref> heap_;
  std::span<const label_ref> view_;
  size_t hash_ = 0;
};

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
  /// Validates the label names of a new series in the caller's order, then
  /// rejects duplicate keys of `key`. Throws `std::invalid_argument`.
  void check(std::span<const label_ref> labels, const label_key& key) const;

  /// `check` for a label set.
  void check(const label_set& labels, const label_key& key) const;

private:
  void check_duplicates(const label_key& key) const;

  std::string name_;
  std::string help_;
  metric_type type_;
};

/// Maps label sets to metrics of type `T` (`counter`, `gauge` or
/// `histogram`). A mutex guards the index only; the returned references are
/// stable and their updates take no lock. Lookups hash the labels in place,
/// so finding an existing series allocates nothing, and the index is a flat
/// open-addressing table, so creating one touches no other series; the order
/// of `collect` is established there, not on every insertion.
template <class T>
class family : public family_base {
public:
  /// `bounds` are the histogram buckets of the series (empty for counters
  /// and gauges), normalized as `histogram_bounds` does; same errors.
  family(std::string name, std::string help, std::vector<double> bounds = {})
      : family_base(std::move(name), std::move(help), type_of()),
        bounds_(std::move(bounds)),
        slots_(min_slots) {
    // nop
  }

  /// Returns the metric for `labels`, creating it on first use. The
  /// reference stays valid until `remove(labels)` or the family dies; keep it
  /// and update it without further lookups. Throws `std::invalid_argument`
  /// for an invalid or duplicate label name.
  T& add(std::initializer_list<label_ref> labels) {
    return get_or_create(std::span{labels.begin(), labels.size()});
  }

  /// `add` for labels held in a label set.
  T& add(const label_set& labels) {
    return get_or_create(labels);
  }

  /// Checks whether a series for `labels` exists (label order irrelevant).
  bool has(const label_set& labels) const {
    label_key key{labels};
    std::lock_guard guard{mtx_};
    return slots_[find(key)].ptr != nullptr;
  }

  /// Destroys the series for `labels`, invalidating references to it.
  void remove(const label_set& labels) {
    label_key key{labels};
    std::lock_guard guard{mtx_};
    auto i = find(key);
    auto* x = slots_[i].ptr;
    if (x == nullptr)
      return;
    erase_slot(i);
    auto pos = std::find_if(order_.begin(), order_.end(),
                            [x](auto& ptr) { return ptr.get() == x; });
    if (static_cast<size_t>(pos - order_.begin()) < sorted_)
      --sorted_;
    order_.erase(pos);
  }

  /// Number of series.
  size_t size() const {
    std::lock_guard guard{mtx_};
    return order_.size();
  }

  /// Histogram bounds shared by all series (empty for counters and gauges).
  const std::vector<double>& bounds() const noexcept {
    return bounds_.values();
  }

  metric_family collect() const override {
    metric_family result{name(), help(), type(), {}};
    std::lock_guard guard{mtx_};
    sort_order();
    result.samples.reserve(order_.size());
    for (auto& x : order_) {
      if constexpr (std::is_same_v<T, histogram>) {
        auto& sample = result.samples.emplace_back(x->metric.collect());
        sample.labels = x->labels;
      } else {
        auto& sample = result.samples.emplace_back();
        sample.labels = x->labels;
        sample.value = x->metric.value();
      }
    }
    return result;
  }

private:
  /// One series: its sorted labels, their hash and the metric.
  struct series {
    series(label_set xs, size_t h, const histogram_bounds& bounds)
        : labels(std::move(xs)), hash(h), metric(make(bounds)) {
      // nop
    }

    static T make(const histogram_bounds& bounds) {
      if constexpr (std::is_same_v<T, histogram>)
        return T{bounds};
      else
        return T{};
    }

    label_set labels;
    size_t hash;
    T metric;
  };

  /// A cell of the index; `ptr == nullptr` marks an empty one.
  struct slot {
    size_t hash = 0;
    series* ptr = nullptr;
  };

  /// The index starts with this many cells and stays at most half full.
  static constexpr size_t min_slots = 16;

  static constexpr metric_type type_of() noexcept {
    if constexpr (std::is_same_v<T, counter>)
      return metric_type::counter;
    else if constexpr (std::is_same_v<T, gauge>)
      return metric_type::gauge;
    else
      return metric_type::histogram;
  }

  template <class Labels>
  T& get_or_create(const Labels& labels) {
    label_key key{labels};
    std::lock_guard guard{mtx_};
    if (auto* x = slots_[find(key)].ptr)
      return x->metric;
    check(labels, key);
    // Everything that can throw comes before the index changes.
    if (2 * (order_.size() + 1) > slots_.size())
      rehash(2 * slots_.size());
    if (order_.size() == order_.capacity())
      order_.reserve(std::max<size_t>(min_slots, 2 * order_.size()));
    label_set sorted;
    sorted.reserve(key.labels().size());
    for (auto& [k, v] : key.labels())
      sorted.emplace_back(std::string{k}, std::string{v});
    auto& x = *order_.emplace_back(
      std::make_unique<series>(std::move(sorted), key.hash(), bounds_));
    slots_[find(key)] = slot{key.hash(), &x};
    return x.metric;
  }

  /// The home cell of `hash` (Fibonacci hashing over the high bits).
  size_t home(size_t hash) const noexcept {
    auto bits = static_cast<unsigned>(std::countr_zero(slots_.size()));
    auto mixed = static_cast<uint64_t>(hash) * 0x9e3779b97f4a7c15ULL;
    return static_cast<size_t>(mixed >> (64 - bits));
  }

  /// The cell holding `key`'s series, or the empty cell where it belongs.
  size_t find(const label_key& key) const noexcept {
    auto mask = slots_.size() - 1;
    for (auto i = home(key.hash());; i = (i + 1) & mask) {
      auto& x = slots_[i];
      if (x.ptr == nullptr
          || (x.hash == key.hash() && key.same(x.ptr->labels)))
        return i;
    }
  }

  void rehash(size_t n) {
    std::vector<slot> old(n);
    old.swap(slots_);
    auto mask = n - 1;
    for (auto& x : old)
      if (x.ptr != nullptr) {
        auto i = home(x.hash);
        while (slots_[i].ptr != nullptr)
          i = (i + 1) & mask;
        slots_[i] = x;
      }
  }

  /// Empties cell `i` and moves later cells of its probe run back, so that
  /// every series stays reachable from its home cell (no tombstones).
  void erase_slot(size_t i) noexcept {
    auto mask = slots_.size() - 1;
    slots_[i] = slot{};
    for (auto j = (i + 1) & mask; slots_[j].ptr != nullptr;
         j = (j + 1) & mask) {
      auto k = home(slots_[j].hash);
      // Cell j may move to the gap at i unless its home lies in (i, j].
      bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        slots_[j] = slot{};
        i = j;
      }
    }
  }

  /// Sorts the series added since the last `collect` and merges them into
  /// the sorted prefix of `order_`.
  void sort_order() const {
    if (sorted_ == order_.size())
      return;
    auto by_labels = [](const auto& x, const auto& y) {
      return x->labels < y->labels;
    };
    auto mid = order_.begin() + static_cast<ptrdiff_t>(sorted_);
    std::sort(mid, order_.end(), by_labels);
    std::inplace_merge(order_.begin(), mid, order_.end(), by_labels);
    sorted_ = order_.size();
  }

  histogram_bounds bounds_;
  mutable std::mutex mtx_;
  std::vector<slot> slots_;
  /// Owns every series; the first `sorted_` ones are in label order.
  mutable std::vector<std::unique_ptr<series>> order_;
  mutable size_t sorted_ = 0;
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
