#pragma once

// Internal to runtime/operations/: the parts of a run_setup that come from
// the project's config and resources, for a new run (create) and a resumed
// one (resume).

#include <cstddef>

#include "config/config.hpp"
#include "config/resources.hpp"
#include "runtime/operations/project.hpp"
#include "runtime/scheduling/run_setup.hpp"

namespace crew::detail {

/// The worker backend the config asks for (`executeWorkers`,
/// `runtime.mode`; PI_CREW_EXECUTE_WORKERS / PI_TEAMS_EXECUTE_WORKERS=0
/// turn execution off).
backend_kind backend_for(const crew_config& cfg);

/// Fills backend-specific parts of a setup from the current resources, for
/// the tasks from `first` on (a plan grown by an adaptive planner).
void fill_workers(run_setup& setup, const project_context& ctx,
                  size_t first = 0);

/// Worktree mode from the config (`requireCleanWorktreeLeader`,
/// `worktree.*`); for a new run the leader must be usable before anything
/// is written.
void apply_workspace(run_setup& setup, const project_context& ctx,
                     bool check_leader);

/// Workflow `implementation` whose planner has not been injected yet: how
/// the run actor grows the plan from the planner's output.
void apply_adaptive(run_setup& setup, const project_context& ctx,
                    const team_def* team);

/// Reliability (retries, deadletter threshold), store (snapshots, fsync)
/// and limit (`maxRunMinutes`) settings of the config.
void apply_config(run_setup& setup, const crew_config& cfg);

} // namespace crew::detail
