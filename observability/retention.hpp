#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace crew {

/// Sum of recent increments over a sliding time window (pi-crew's
/// `TimeWindowedCounter`, inventory §7.4), kept in a ring of equal-width
/// buckets instead of a list of events, so memory is bounded. One instance
/// tracks one series; keep one per label set.
///
/// Time is always passed in, which makes tests deterministic. A bucket is
/// reused (and thereby pruned) once its slot falls out of the window, so the
/// window is precise to one bucket width. Not synchronized: the owning actor
/// serializes access.
class time_windowed_counter {
public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  /// Throws `std::invalid_argument` if `buckets` is 0 or `window` is shorter
  /// than `buckets` milliseconds.
  explicit time_windowed_counter(std::chrono::milliseconds window
                                 = std::chrono::hours{1},
                                 size_t buckets = 60);

  /// Adds `value` at `now`. Non-finite values, and values older than the
  /// window relative to the newest bucket, are ignored.
  void add(double value, time_point now);

  /// Sum of the values added within the window ending at `now`.
  double sum(time_point now) const;

  /// Sum of the values added within `within` (at most the window, rounded up
  /// to whole buckets) before `now`; pi-crew's `count(labels, duration)`.
  double sum(time_point now, std::chrono::milliseconds within) const;

  /// `sum(now)` divided by the window length in seconds.
  double rate_per_second(time_point now) const;

  /// Configured window length.
  std::chrono::milliseconds window() const noexcept { return window_; }

private:
  struct bucket {
    int64_t slot = INT64_MIN;
    double value = 0;
  };

  int64_t slot_of(time_point t) const noexcept;

  double sum_slots(int64_t newest, int64_t n) const;

  std::chrono::milliseconds window_;
  std::chrono::milliseconds width_;
  std::vector<bucket> ring_;
};

} // namespace crew
