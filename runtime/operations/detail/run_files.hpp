#pragma once

// Internal to runtime/operations/: a run's files as the operations write
// them outside a run actor (creation, an offline cancel, decline or
// deadletter) and the plan as they read it.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/operations/inspect.hpp"
#include "store/model.hpp"
#include "store/paths.hpp"
#include "store/replay.hpp"

namespace crew::detail {

/// One event line written outside a run actor (run.created, an offline
/// cancel), with the run's correlation ids: run-level events carry the run
/// span, task events the task span.
std::string event_line(std::string_view type, std::string_view run_id,
                       std::string_view task_id, std::string_view message,
                       std::string_view data, uint64_t seq,
                       uint32_t task_index = UINT32_MAX);

/// Appends the tasks a replay found in adaptive.plan_injected events (not
/// yet in plan.json: the owner died before rewriting it). True if any.
bool grow_plan(std::vector<planned_task>& plan, replay_state& replay,
               const run_paths& paths);

/// Writes tasks.json and manifest.json.
void write_snapshots(const run_paths& paths, const run_manifest& m,
                     const std::vector<planned_task>& plan,
                     const std::vector<task_state>& states);

/// Rewrites manifest.json and tasks.json from a fresh replay after events
/// were appended outside a run actor (offline cancel, decline, deadletter).
void refresh_snapshots(const run_paths& paths, const run_view& view);

/// The manifest's paths of the run's state and artifacts.
void fill_manifest_paths(run_manifest& m, const run_paths& paths);

} // namespace crew::detail
