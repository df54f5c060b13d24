#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace crew {

/// Inputs of the concurrency decision (inventory §4.4); 0 means "unset".
struct concurrency_inputs {
  std::string_view workflow_name;
  uint32_t workflow_max = 0;
  uint32_t team_max = 0;
  uint32_t limit_max = 0; ///< limits.maxConcurrentWorkers
  bool allow_unbounded = false;
};

/// The resolved number of parallel workers and pi-crew's reason string,
/// e.g. "team:2" or "limit:16;capped:8".
struct concurrency_decision {
  uint32_t max_concurrent = 1;
  uint32_t requested = 1;
  std::string reason;
};

/// Hard cap applied unless limits.allowUnboundedConcurrency is set.
inline constexpr uint32_t concurrency_hard_cap = 8;

/// Built-in default by workflow name: parallel-research 4; research,
/// implementation, review, default 2; anything else 1.
uint32_t default_concurrency(std::string_view workflow_name) noexcept;

/// Resolves limit ?? team ?? workflow ?? default, capped at 8 unless
/// unbounded. Continuous dispatch: this is a ceiling on running tasks.
concurrency_decision resolve_concurrency(const concurrency_inputs& in);

} // namespace crew
