#include "runtime/workers/sim.hpp"

#include <algorithm>
#include <cmath>

namespace crew {

namespace {

uint64_t splitmix64(uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// Maps 64 random bits to [0, 1) with 53 bits of precision.
double unit(uint64_t bits) noexcept {
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

double clamp01(double x) noexcept {
  return std::isnan(x) ? 0.0 : std::clamp(x, 0.0, 1.0);
}

} // namespace

const char* to_string(sim_kind x) noexcept {
  switch (x) {
    case sim_kind::success:
      return "success";
    case sim_kind::failure:
      return "failure";
    case sim_kind::hang:
      return "hang";
    case sim_kind::crash:
      return "crash";
  }
  return "unknown";
}

sim_outcome sim_decide(const sim_params& params, uint64_t task_index,
                       uint32_t attempt) noexcept {
  // Chain the inputs through the mixer so that neighbouring tasks and
  // attempts land far apart; two further draws derive from the state.
  uint64_t state = splitmix64(params.seed);
  state = splitmix64(state ^ task_index);
  state = splitmix64(state ^ attempt);
  double kind_draw = unit(splitmix64(state ^ 0x6B696E64ULL));
  double latency_draw = unit(splitmix64(state ^ 0x6C6174ULL));
  sim_outcome out{sim_kind::success, 0};
  double crash = clamp01(params.crash_rate);
  double hang = crash + clamp01(params.hang_rate);
  double fail = hang + clamp01(params.fail_rate);
  if (kind_draw < crash)
    out.kind = sim_kind::crash;
  else if (kind_draw < hang)
    out.kind = sim_kind::hang;
  else if (kind_draw < fail)
    out.kind = sim_kind::failure;
  if (params.latency_ms > 0) {
    double j = clamp01(params.latency_jitter);
    double ms = params.latency_ms * (1.0 - j + 2.0 * j * latency_draw);
    out.latency_us = static_cast<uint64_t>(std::llround(ms * 1000.0));
  }
  return out;
}

} // namespace crew
