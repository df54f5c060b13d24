#include "store/correlation.hpp"

namespace crew {

namespace {

uint64_t mix(uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x == 0 ? 1 : x; // ids are never all zero (invalid in OTLP)
}

uint64_t fnv1a(std::string_view s, uint64_t seed) noexcept {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

} // namespace

correlation correlation::for_run(std::string_view run_id) noexcept {
  correlation c;
  c.trace_hi = mix(fnv1a(run_id, 1));
  c.trace_lo = mix(fnv1a(run_id, 2));
  c.run_span = mix(c.trace_lo ^ c.trace_hi);
  return c;
}

uint64_t correlation::task_span(uint32_t index) const noexcept {
  return mix(run_span ^ (uint64_t{index} + 1) * 0xD6E8FEB86659FD93ull);
}

uint64_t correlation::attempt_span(uint32_t index,
                                   uint32_t attempt) const noexcept {
  return mix(task_span(index) + attempt);
}

void append_hex16(std::string& out, uint64_t x) {
  static constexpr char digits[] = "0123456789abcdef";
  char buf[16];
  for (int i = 15; i >= 0; --i) {
    buf[i] = digits[x & 0xF];
    x >>= 4;
  }
  out.append(buf, 16);
}

std::string correlation::trace_hex() const {
  std::string out;
  out.reserve(32);
  append_hex16(out, trace_hi);
  append_hex16(out, trace_lo);
  return out;
}

} // namespace crew
