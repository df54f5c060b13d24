#pragma once

// `crew verify RUN` and `crew deadletter RUN [--task ID --reason manual]`.

#include <string>
#include <vector>

namespace crew::cli {

/// Replays a run's log and checks its invariants; prints a report (one JSON
/// object with `json`). Returns 0 when every check holds, 1 otherwise.
int cmd_verify(const std::string& cwd, const std::string& run_id, bool json);

/// Lists a run's deadletter entries, or (with `task`) deadletters that task
/// by hand; `reason` must be `manual`.
int cmd_deadletter(const std::string& cwd, const std::string& run_id,
                   const std::string& task, const std::string& reason, bool json);

/// `crew recover [--apply | --decline] [RUN…]`: shows the recovery plans of
/// interrupted runs, applies them (each run continues here, in turn) or
/// declines them.
int cmd_recover(const std::string& cwd, const std::vector<std::string>& runs,
                bool apply, bool decline, bool json,
                const std::vector<std::string>& overrides);

} // namespace crew::cli
