#pragma once

#include <cstdint>

namespace crew {

/// Configures simulated workers for load tests. Rates are probabilities in
/// [0, 1], checked in the order crash, hang, failure; the rest succeed.
struct sim_params {
  /// Mean latency in ms; 0 means every outcome is immediate.
  double latency_ms = 0;
  /// Spread ratio j: latency is uniform in [mean*(1-j), mean*(1+j)],
  /// clamped to [0, 1].
  double latency_jitter = 0.5;
  double fail_rate = 0;
  double hang_rate = 0;
  double crash_rate = 0;
  uint64_t seed = 1;
};

/// What a simulated attempt does.
enum class sim_kind : uint8_t {
  success = 1,
  failure, ///< ends with a non-zero exit code
  hang,    ///< stops producing output and never finishes
  crash,   ///< dies abruptly (signal)
};

/// Returns the stable name of `x` (e.g. "hang").
const char* to_string(sim_kind x) noexcept;

/// The decided fate of one simulated attempt.
struct sim_outcome {
  sim_kind kind;
  uint64_t latency_us; ///< time until the outcome shows, in microseconds
};

/// Decides the outcome of attempt `attempt` of task `task_index`. Pure: a
/// splitmix64 hash of (seed, task, attempt), no global RNG, so equal inputs
/// give equal outcomes in any order and on any thread.
sim_outcome sim_decide(const sim_params& params, uint64_t task_index,
                       uint32_t attempt) noexcept;

} // namespace crew
