#include "observability/metrics.hpp"

#include <cmath>
#include <limits>

namespace crew {

// -- quantiles ----------------------------------------------------------------

const std::vector<double>& default_buckets() {
  static const std::vector<double> result{1,   2,   5,    10,   25,   50,   100,
                                          250, 500, 1000, 2500, 5000, 10000};
  return result;
}

double bucket_quantile(const std::vector<double>& bounds,
                       const std::vector<uint64_t>& counts, double sum,
                       uint64_t count, double q) {
  constexpr auto nan = std::numeric_limits<double>::quiet_NaN();
  if (count == 0 || counts.size() != bounds.size() + 1 || std::isnan(q))
    return nan;
  q = std::clamp(q, 0.0, 1.0);
  auto total = static_cast<double>(count);
  auto target = std::max(1.0, q * total);
  double cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    auto in_bucket = static_cast<double>(counts[i]);
    auto previous = cumulative;
    cumulative += in_bucket;
    // The overflow bucket catches a target beyond an inconsistent total.
    if (cumulative < target && i + 1 < counts.size())
      continue;
    auto lower = i == 0 ? 0.0 : bounds[i - 1];
    auto upper = i < bounds.size() ? bounds[i] : std::max(lower, sum / total);
    return lower
           + ((target - previous) / std::max(1.0, in_bucket)) * (upper - lower);
  }
  return nan; // unreachable: counts is never empty here
}

double quantile(const metric_sample& sample, double q) {
  return bucket_quantile(sample.bounds, sample.bucket_counts, sample.sum,
                         sample.count, q);
}

// -- primitives ---------------------------------------------------------------

void counter::inc(double delta) noexcept {
  if (std::isfinite(delta) && delta >= 0)
    value_.fetch_add(delta, std::memory_order_relaxed);
}

void gauge::set(double value) noexcept {
  if (std::isfinite(value))
    value_.store(value, std::memory_order_relaxed);
}

void gauge::add(double delta) noexcept {
  if (std::isfinite(delta))
    value_.fetch_add(delta, std::memory_order_relaxed);
}

histogram_bounds::histogram_bounds(std::vector<double> bounds) {
  for (auto bound : bounds)
    if (!std::isfinite(bound))
      throw std::invalid_argument("histogram bounds must be finite");
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  values_ = std::make_shared<const std::vector<double>>(std::move(bounds));
}

histogram::histogram(std::vector<double> bounds)
    : histogram(histogram_bounds{std::move(bounds)}) {
  // nop
}

histogram::histogram(histogram_bounds bounds) : bounds_(std::move(bounds)) {
  auto n = bounds_.values().size() + 1;
  if (n <= inline_buckets) {
    counts_ = local_.data();
  } else {
    heap_ = std::make_unique<std::atomic<uint64_t>[]>(n);
    counts_ = heap_.get();
  }
  for (size_t i = 0; i < n; ++i)
    counts_[i].store(0, std::memory_order_relaxed);
}

void histogram::observe(double value) noexcept {
  if (!std::isfinite(value))
    return;
  auto& bounds = bounds_.values();
  auto i = std::lower_bound(bounds.begin(), bounds.end(), value)
           - bounds.begin();
  counts_[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

void histogram::merge(const std::vector<uint64_t>& counts, double sum) noexcept {
  if (counts.size() != bounds().size() + 1 || !std::isfinite(sum))
    return;
  for (size_t i = 0; i < counts.size(); ++i)
    if (counts[i] != 0)
      counts_[i].fetch_add(counts[i], std::memory_order_relaxed);
  sum_.fetch_add(sum, std::memory_order_relaxed);
}

std::vector<uint64_t> histogram::bucket_counts() const {
  std::vector<uint64_t> result(bounds().size() + 1);
  for (size_t i = 0; i < result.size(); ++i)
    result[i] = counts_[i].load(std::memory_order_relaxed);
  return result;
}

uint64_t histogram::count() const noexcept {
  uint64_t result = 0;
  for (size_t i = 0, n = bounds().size(); i <= n; ++i)
    result += counts_[i].load(std::memory_order_relaxed);
  return result;
}

metric_sample histogram::collect() const {
  metric_sample result;
  result.bounds = bounds();
  result.bucket_counts = bucket_counts();
  // Deriving count from the buckets read keeps `+Inf == _count` even while
  // other threads observe.
  for (auto n : result.bucket_counts)
    result.count += n;
  result.sum = sum();
  return result;
}

// -- families -----------------------------------------------------------------

namespace {

/// Orders label refs as `label_set` orders its pairs. Keys mostly differ in
/// their first character (compared as unsigned char, as std::string does),
/// which settles the order without a call to memcmp.
bool ref_less(const label_ref& x, const label_ref& y) noexcept {
  if (!x.first.empty() && !y.first.empty() && x.first[0] != y.first[0])
    return static_cast<unsigned char>(x.first[0])
           < static_cast<unsigned char>(y.first[0]);
  return x < y;
}

} // namespace

label_key::label_key(std::span<const label_ref> labels) : view_(labels) {
  // Callers usually pass keys in order already: no copy, no sort then.
  if (!std::is_sorted(labels.begin(), labels.end(), ref_less)) {
    auto buf = storage(labels.size());
    std::copy(labels.begin(), labels.end(), buf);
    std::sort(buf, buf + labels.size(), ref_less);
    view_ = {buf, labels.size()};
  }
  hash_ = hash_of(view_);
}

label_key::label_key(const label_set& labels) {
  auto buf = storage(labels.size());
  for (size_t i = 0; i < labels.size(); ++i)
    buf[i] = label_ref{labels[i].first, labels[i].second};
  if (!std::is_sorted(buf, buf + labels.size(), ref_less))
    std::sort(buf, buf + labels.size(), ref_less);
  view_ = {buf, labels.size()};
  hash_ = hash_of(view_);
}

label_ref* label_key::storage(size_t n) {
  if (n <= local_.size())
    return local_.data();
  heap_.resize(n);
  return heap_.data();
}

size_t label_key::hash_of(std::span<const label_ref> labels) noexcept {
  std::hash<std::string_view> h;
  size_t seed = labels.size();
  auto mix = [&seed](size_t x) {
    seed ^= x + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2);
  };
  for (auto& [key, value] : labels) {
    mix(h(key));
    mix(h(value));
  }
  return seed;
}

bool label_key::same(const label_set& x) const noexcept {
  if (x.size() != view_.size())
    return false;
  for (size_t i = 0; i < x.size(); ++i)
    if (view_[i].second != x[i].second || view_[i].first != x[i].first)
      return false;
  return true;
}

void family_base::check(std::span<const label_ref> labels,
                        const label_key& key) const {
  for (auto& [name, value] : labels)
    if (!is_valid_label_name(name))
      throw std::invalid_argument("invalid label name '" + std::string{name}
                                  + "' in metric " + name_);
  check_duplicates(key);
}

void family_base::check(const label_set& labels, const label_key& key) const {
  for (auto& [name, value] : labels)
    if (!is_valid_label_name(name))
      throw std::invalid_argument("invalid label name '" + name
                                  + "' in metric " + name_);
  check_duplicates(key);
}

void family_base::check_duplicates(const label_key& key) const {
  auto xs = key.labels();
  auto dup = std::adjacent_find(xs.begin(), xs.end(), [](auto& x, auto& y) {
    return x.first == y.first;
  });
  if (dup != xs.end())
    throw std::invalid_argument("duplicate label name '"
                                + std::string{dup->first} + "' in metric "
                                + name_);
}

// -- registry -----------------------------------------------------------------

const char* to_string(metric_type type) noexcept {
  switch (type) {
    case metric_type::counter:
      return "counter";
    case metric_type::gauge:
      return "gauge";
    default:
      return "histogram";
  }
}

template <class T>
family<T>& metric_registry::get_or_create(std::string name, std::string help,
                                          std::vector<double> bounds) {
  if (!is_valid_metric_name(name))
    throw std::invalid_argument(
        "invalid metric name '" + name
        + "' (expected ^crew\\.[a-z]+\\.[a-z][a-z_]*$)");
  std::lock_guard guard{mtx_};
  for (auto& existing : families_) {
    if (existing->name() != name)
      continue;
    if (auto ptr = dynamic_cast<family<T>*>(existing.get()))
      return *ptr;
    throw std::invalid_argument("metric '" + name + "' already registered as "
                                + to_string(existing->type()));
  }
  std::unique_ptr<family<T>> created;
  if constexpr (std::is_same_v<T, histogram>) {
    // The family normalizes (and validates) the bounds once for all series.
    created = std::make_unique<family<T>>(std::move(name), std::move(help),
                                          std::move(bounds));
  } else {
    created = std::make_unique<family<T>>(std::move(name), std::move(help));
  }
  auto& result = *created;
  families_.emplace_back(std::move(created));
  return result;
}

family<counter>& metric_registry::counter_family(std::string name,
                                                 std::string help) {
  return get_or_create<counter>(std::move(name), std::move(help), {});
}

family<gauge>& metric_registry::gauge_family(std::string name,
                                             std::string help) {
  return get_or_create<gauge>(std::move(name), std::move(help), {});
}

family<histogram>&
metric_registry::histogram_family(std::string name, std::string help,
                                  std::vector<double> bounds) {
  return get_or_create<histogram>(std::move(name), std::move(help),
                                  std::move(bounds));
}

std::vector<metric_family> metric_registry::collect() const {
  std::vector<metric_family> result;
  std::lock_guard guard{mtx_};
  result.reserve(families_.size());
  for (auto& ptr : families_)
    result.emplace_back(ptr->collect());
  return result;
}

} // namespace crew
