#pragma once

// A run's deadletter: listing its entries and deadlettering a task by hand.

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace crew {

/// The entries of a run's deadletter.jsonl, in file order. Throws
/// input_error naming the file and line of an unparsable entry.
std::vector<nlohmann::json> list_deadletters(const std::filesystem::path& crew_root,
                                             std::string_view run_id);

enum class deadletter_outcome : uint8_t {
  written = 1, ///< the entry is in deadletter.jsonl
  timed_out,   ///< the owning process did not act within the wait
};

/// Deadletters task `task_id` of a run by hand (reason `manual`): through
/// the owning process if one is alive (it stops a running attempt), else
/// directly in the log (a task that had not finished fails). Throws
/// input_error for an unknown run or task.
deadletter_outcome deadletter_task(const std::filesystem::path& crew_root,
                                   std::string_view run_id,
                                   std::string_view task_id,
                                   uint64_t wait_ms = 10000);

} // namespace crew
