#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// One invariant `crew verify` checks, with what it found.
struct verify_check {
  std::string name;    ///< e.g. "seq contiguous"
  bool ok = true;
  std::vector<std::string> problems; ///< precise: file, line, task, seq
};

/// The result of verifying a run against its log.
struct verify_report {
  std::string run_id;
  uint64_t events = 0;
  uint64_t last_seq = 0;
  std::vector<verify_check> checks;

  bool ok() const noexcept {
    for (auto& c : checks)
      if (!c.ok)
        return false;
    return true;
  }
};

/// Replays the run's log and checks its invariants: seq contiguous from 1;
/// one terminal state and one terminal event per task (per requeue); a
/// terminal run has only terminal tasks; attempts consistent with the
/// task.started and crew.task.retry_attempt events; a completed run has
/// only completed tasks, none completed after a cancel or expiry intent
/// since the run last (re)started; deadletter.jsonl
/// consistent with the crew.task.deadletter events; the tasks.json snapshot
/// equal to the replay at the seq it claims, and never ahead of the log.
/// Throws input_error for an unknown run or a log damaged in the middle.
verify_report verify_run(const std::filesystem::path& crew_root,
                         std::string_view run_id);

} // namespace crew
