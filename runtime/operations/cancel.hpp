#pragma once

// Cancelling a run, through its live owner or directly in its log.

#include <cstdint>
#include <filesystem>
#include <string_view>

namespace crew {

enum class cancel_outcome : uint8_t {
  requested = 1,    ///< the owning process was asked and confirmed
  cancelled_offline,///< no live owner: cancelled directly in the log
  already_terminal, ///< nothing to do
  timed_out,        ///< the owner did not confirm within the wait
};

/// Cancels a run: asks the live owner (which kills its workers) and waits up
/// to `wait_ms` for the cancelled status, or cancels an ownerless run
/// directly in its log.
cancel_outcome cancel_run(const std::filesystem::path& crew_root,
                          std::string_view run_id, uint64_t wait_ms = 30000);

} // namespace crew
