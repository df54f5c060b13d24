#include "runtime/supervision/retry_policy.hpp"

#include "observability/names.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace crew {

namespace {

uint64_t mix(uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t hash(std::string_view s, uint64_t h) noexcept {
  for (unsigned char c : s)
    h = (h ^ c) * 0x100000001b3ull;
  return h;
}


} // namespace

uint64_t retry_delay_ms(const retry_policy& p, std::string_view run_id,
                        std::string_view task_id, uint32_t attempt) noexcept {
  auto n = std::max<uint32_t>(attempt, 1);
  auto base = static_cast<double>(p.backoff_ms)
              * std::pow(std::max(1.0, p.factor), static_cast<double>(n - 1));
  auto seed = mix(hash(task_id, hash(run_id, 0xcbf29ce484222325ull)) ^ n);
  auto unit = static_cast<double>(seed >> 11) * 0x1.0p-53; // [0, 1)
  auto delay = base + (unit * 2 - 1) * std::clamp(p.jitter_ratio, 0.0, 1.0) * base;
  delay = std::clamp(delay, 0.0, static_cast<double>(p.max_backoff_ms));
  return static_cast<uint64_t>(std::llround(delay));
}

bool glob_match_icase(std::string_view pattern, std::string_view text) noexcept {
  return glob_match(pattern, text, true);
}

bool is_retryable(const retry_policy& p, std::string_view error) noexcept {
  if (p.retryable_errors.empty())
    return true;
  return std::any_of(p.retryable_errors.begin(), p.retryable_errors.end(),
                     [&](const std::string& g) { return glob_match_icase(g, error); });
}

} // namespace crew
