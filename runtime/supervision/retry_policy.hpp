#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// When and how often a failed attempt runs again (reliability.autoRetry and
/// reliability.retryPolicy, inventory §6.1, plus maxBackoffMs).
struct retry_policy {
  bool enabled = false;       ///< reliability.autoRetry
  uint32_t max_attempts = 3;  ///< attempts in all, first included
  uint64_t backoff_ms = 1000; ///< delay before the second attempt
  double jitter_ratio = 0.3;  ///< +- share of the delay drawn at random
  double factor = 2;          ///< exponential growth per attempt
  uint64_t max_backoff_ms = 60000;
  /// Globs (`*` = any run of characters, case-insensitive, whole message);
  /// empty: every error is retryable.
  std::vector<std::string> retryable_errors;
};

/// The delay before attempt `attempt + 1` after attempt `attempt` failed:
/// `backoff * factor^(attempt-1)`, +- jitter, capped at max_backoff_ms. The
/// jitter comes from a generator seeded by (run, task, attempt): the same
/// failure always waits the same time, in any process.
uint64_t retry_delay_ms(const retry_policy& p, std::string_view run_id,
                        std::string_view task_id, uint32_t attempt) noexcept;

/// Whether `error` matches the policy's retryable globs.
bool is_retryable(const retry_policy& p, std::string_view error) noexcept;

/// Case-insensitive whole-string glob match with `*` wildcards.
bool glob_match_icase(std::string_view pattern, std::string_view text) noexcept;

} // namespace crew
