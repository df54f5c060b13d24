#pragma once

// Interrupted runs (status running, owner dead): finding them and declining
// their recovery. Recovering one is prepare_resume with resume_mode::recover
// (resume.hpp).

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// The recovery plan of an interrupted run (status running, owner dead).
struct recovery_plan {
  std::string run_id;
  std::vector<std::string> resumable_tasks; ///< attempts cut off by the crash
  std::vector<std::string> preserved_tasks; ///< already terminal: kept
  uint64_t last_event_seq = 0;
};

/// Finds the interrupted runs under `crew_root` (all of them, or those in
/// `run_ids`; a named run that is unknown or not interrupted is an
/// input_error naming it).
std::vector<recovery_plan> find_interrupted(const std::filesystem::path& crew_root,
                                            const std::vector<std::string>& run_ids);

/// Declines the recovery of an interrupted run: its unfinished tasks and the
/// run end `cancelled` with reason `interrupted-not-resumed`
/// (`crew.run.recovery_declined`); orphaned workers are killed.
void decline_recovery(const std::filesystem::path& crew_root, std::string_view run_id);

} // namespace crew
