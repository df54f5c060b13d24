#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "store/model.hpp"

namespace crew {

// -- manifest.json ------------------------------------------------------------

/// Renders `m` as pi-crew's `manifest.json` (inventory §1.2): schemaVersion 1,
/// runId, team, workflow, goal, status, workspaceMode, createdAt, updatedAt,
/// cwd, stateRoot, artifactsRoot, tasksPath, eventsPath, artifacts (always
/// empty here), summary, plus crew's `snapshotSeq`, `runtime` and
/// `owner: {pid, startTime}`. Pretty-printed with 2 spaces and a trailing
/// newline, like pi-crew.
std::string manifest_json(const run_manifest& m);

/// Parses a `manifest.json` (pi-crew's or ours; crew's additions are
/// optional). Throws `input_error(errc::corrupt_log)` naming
/// `path_for_errors` on malformed JSON, a missing `runId` or an unknown
/// status.
run_manifest parse_manifest(std::string_view json,
                            const std::string& path_for_errors);

// -- tasks.json ---------------------------------------------------------------

/// Renders pi-crew's `tasks.json` array for a run: per task id, runId, stepId,
/// role, agent, title, status, dependsOn, cwd, startedAt/finishedAt (omitted
/// when empty), exitCode (null when none), model, error (omitted when empty),
/// attempts[{startedAt, endedAt?, error?}] and graph{taskId, dependencies
/// (task ids), queue}. `states` is parallel to `plan`. Hand-written (no DOM):
/// linear in the output size, suitable for 100,000 tasks.
/// Read access to task states by plan index, so that a snapshot can be
/// written from any representation (the run engine keeps a compact one).
class task_state_source {
public:
  virtual ~task_state_source() = default;
  virtual task_status status(size_t i) const = 0;
  virtual task_state state(size_t i) const = 0;
};

/// Streams tasks.json (same bytes as `tasks_json`) to `sink` in pieces of
/// about `chunk_bytes`: a 100,000-task snapshot never exists as one string.
void write_tasks_json(std::string_view run_id,
                      const std::vector<planned_task>& plan,
                      const task_state_source& states, std::string_view cwd,
                      const std::function<void(std::string_view)>& sink,
                      size_t chunk_bytes = 1 << 20);

/// The graph.queue value of task `i` given any state source.
const char* queue_state(const std::vector<planned_task>& plan,
                        const task_state_source& states, size_t i);

std::string tasks_json(std::string_view run_id,
                       const std::vector<planned_task>& plan,
                       const std::vector<task_state>& states,
                       std::string_view cwd);

/// Parses a `tasks.json` back into states parallel to `plan` (matched by task
/// id; tasks absent from the file stay queued). Throws
/// `input_error(errc::corrupt_log)` naming `path_for_errors` on malformed
/// JSON, an unknown status or a task id that is not in the plan.
std::vector<task_state>
parse_tasks(std::string_view json, const std::vector<planned_task>& plan,
            const std::filesystem::path& path_for_errors);

/// The `graph.queue` value of task `i` (inventory §1.5): queued → `ready` if
/// all deps completed else `blocked`; running → `running`; completed/skipped
/// → `done`; failed/cancelled → `blocked`.
const char* queue_state(const std::vector<planned_task>& plan,
                        const std::vector<task_state>& states, size_t i);

// -- plan.json ----------------------------------------------------------------

/// Renders the immutable task graph (`plan.json`): an array of {id, stepId,
/// role, agent, title, model, task, dependsOn}, pretty-printed.
std::string plan_json(const std::vector<planned_task>& plan);

/// Parses a `plan.json`; recomputes `deps` by mapping each `dependsOn`
/// entry to the index of the task with that step id, or else that task id.
/// Throws `input_error(errc::corrupt_log)` naming `path_for_errors` on
/// malformed JSON, a duplicate task id or an unknown dependency.
std::vector<planned_task>
parse_plan(std::string_view json, const std::filesystem::path& path_for_errors);

/// Parses a JSON array of plan entries as `parse_plan` does, without
/// resolving `deps` (the entries may depend on tasks outside the array, as
/// the tasks of an `adaptive.plan_injected` event do). Throws
/// `input_error(errc::corrupt_log)` naming `what`.
std::vector<planned_task> parse_plan_tasks(std::string_view json,
                                           std::string_view what);

/// Recomputes `deps` of every task from `depends_on` (as `parse_plan` does).
/// Throws `input_error(errc::invalid_input)` naming `what` on an unknown
/// dependency or a duplicate task id.
void resolve_deps(std::vector<planned_task>& plan, std::string_view what);

} // namespace crew
