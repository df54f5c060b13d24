#include "observability/retention.hpp"

#include <cmath>
#include <stdexcept>

namespace crew {

time_windowed_counter::time_windowed_counter(std::chrono::milliseconds window,
                                             size_t buckets)
    : window_(window) {
  if (buckets == 0)
    throw std::invalid_argument("time_windowed_counter needs a bucket");
  width_ = window / static_cast<int64_t>(buckets);
  if (width_.count() <= 0)
    throw std::invalid_argument("time_windowed_counter window too short");
  ring_.resize(buckets);
}

int64_t time_windowed_counter::slot_of(time_point t) const noexcept {
  auto since
      = std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch());
  auto n = since.count(), w = width_.count();
  // Floor division, so instants before the epoch map to earlier slots.
  return n >= 0 ? n / w : -((-n + w - 1) / w);
}

void time_windowed_counter::add(double value, time_point now) {
  if (!std::isfinite(value))
    return;
  auto slot = slot_of(now);
  auto n = static_cast<int64_t>(ring_.size());
  auto& b = ring_[static_cast<size_t>(((slot % n) + n) % n)];
  if (b.slot == slot) {
    b.value += value;
  } else if (b.slot < slot) {
    b.slot = slot;
    b.value = value;
  }
  // b.slot > slot: the sample is a full window older than data already
  // there; it would be pruned at once.
}

double time_windowed_counter::sum_slots(int64_t newest, int64_t n) const {
  double result = 0;
  for (auto& b : ring_)
    if (b.slot <= newest && b.slot > newest - n)
      result += b.value;
  return result;
}

double time_windowed_counter::sum(time_point now) const {
  return sum_slots(slot_of(now), static_cast<int64_t>(ring_.size()));
}

double time_windowed_counter::sum(time_point now,
                                  std::chrono::milliseconds within) const {
  auto n = (within.count() + width_.count() - 1) / width_.count();
  n = std::min<int64_t>(n, static_cast<int64_t>(ring_.size()));
  return n <= 0 ? 0.0 : sum_slots(slot_of(now), n);
}

double time_windowed_counter::rate_per_second(time_point now) const {
  auto seconds = std::chrono::duration<double>(window_).count();
  return sum(now) / seconds;
}

} // namespace crew
