#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/resources.hpp"
#include "store/model.hpp"

namespace crew {

// -- the plan a planner emits (inventory §4.9) --------------------------------

/// Most tasks an adaptive plan may hold (pi-crew `MAX_ADAPTIVE_TASKS`).
inline constexpr size_t max_adaptive_tasks = 12;

/// One task of an adaptive plan.
struct adaptive_task {
  std::string role;  ///< a role name of the team
  std::string title; ///< trimmed; empty = none given
  std::string task;  ///< trimmed, never empty
};

/// One phase of an adaptive plan; its tasks may run in parallel.
struct adaptive_phase {
  std::string name; ///< trimmed; `phase-<n>` (1-based) when not given
  std::vector<adaptive_task> tasks;
};

/// A validated adaptive plan: phases in run order, at most 12 tasks in all.
struct adaptive_plan {
  std::vector<adaptive_phase> phases;

  /// Returns the number of tasks over all phases.
  size_t task_count() const noexcept;
};

/// The outcome of reading a planner's output.
struct adaptive_parse_result {
  /// True if `plan` is usable (strictly valid or repaired).
  bool ok = false;
  /// True if the strict parse failed and repair produced `plan`.
  bool repaired = false;
  adaptive_plan plan;
  /// What repair changed, in order, as human-readable sentences (e.g.
  /// "role 'coder' mapped to 'executor'"). Empty unless `repaired`.
  std::vector<std::string> repairs;
  /// Why the strict parse rejected the output; empty if it accepted it.
  std::string strict_error;
  /// Why no plan could be read (strict error, then the repair failure);
  /// empty if `ok`.
  std::string error;
};

/// Returns the plan text of a planner's output: the text between the first
/// `ADAPTIVE_PLAN_JSON_START` and the next `ADAPTIVE_PLAN_JSON_END`, else the
/// body of the first fenced code block (an optional `json` info word, in any
/// case, is skipped), trimmed of surrounding whitespace; `std::nullopt` if
/// the output has neither. The view points into `output`.
std::optional<std::string_view>
extract_adaptive_plan_text(std::string_view output);

/// Reads the plan in `output` strictly: a JSON object with
/// `phases[{name?, tasks[{role, title?, task}]}]`, or a top-level `tasks[]`
/// (one phase named `adaptive`) when `phases` is not an array. Every role
/// must be a role name of `team`, every `task` a non-blank string, every
/// phase a non-empty `tasks` array, and the plan must hold 1 to 12 tasks.
/// On any violation the result is not ok and `error` (= `strict_error`)
/// names the phase, task and field at fault.
adaptive_parse_result parse_adaptive_plan_strict(std::string_view output,
                                                 const team_def& team);

/// Reads the plan in `output`: strictly first, then, if that fails and
/// `allow_repair` is set, leniently. Repair parses the extracted text as is
/// or, failing that, with a truncated string closed, trailing and dangling
/// commas removed, a dangling key or value completed with `null` and
/// unbalanced `{`/`[` closed. It then skips malformed phases, drops tasks
/// that are not objects, have no task text or have an unknown role, maps
/// role aliases (below), keeps the first 12 tasks and drops phases left
/// empty. Role mapping, on the slug of the role: a slug that is itself a
/// team role (`Executor`); reviewer <- code-reviewer, review, code-review,
/// critic; security-reviewer <- security, security-review, sec-review;
/// test-engineer <- tester, qa, test; executor <- developer, implementer,
/// coder, engineer; explorer <- researcher, scout; analyst <- analysis,
/// analyzer (only onto roles the team has). Repair fails if no task is left.
/// The caller decides `allow_repair` (see `adaptive_repair_from_env`).
adaptive_parse_result parse_adaptive_plan(std::string_view output,
                                          const team_def& team,
                                          bool allow_repair);

/// Returns false if `PI_CREW_ADAPTIVE_REPAIR` or `PI_TEAMS_ADAPTIVE_REPAIR`
/// is `0`, true otherwise.
bool adaptive_repair_from_env();

/// Renders `metadata/adaptive-repair.json` for a repaired result: pi-crew's
/// `{reason, phases: [{name, count, roles}]}` (reason `repaired`, or
/// `normalized` when repair changed nothing recorded) plus `repairs` and
/// `strictError`, pretty-printed with 2-space indentation and a trailing
/// newline.
std::string adaptive_repair_json(const adaptive_parse_result& result);

// -- injection into a run's plan ----------------------------------------------

/// Returns pi-crew's slug: lowercase, runs outside [a-z0-9] become `-`,
/// leading/trailing `-` trimmed, at most 32 characters, empty -> `task`.
std::string adaptive_slug(std::string_view str);

/// Returns the workflow steps of `plan` (pi-crew adds them to the workflow
/// so that a resumed run can find them): ids
/// `adaptive-<phase#>-<task#>-<slug(role)>` (1-based), `parallel_group`
/// `adaptive-<slug(phase name)>`, the task text as `task`; phase 1 depends on
/// `assess_step_id`, every later phase on all step ids of the phase before.
std::vector<workflow_step> adaptive_steps(const adaptive_plan& plan,
                                          std::string_view assess_step_id);

/// Returns the tasks to append to a plan whose task `assess_task_id` sits
/// at index `assess_index` and whose size is `first_index`. Task ids are
/// pi-crew's `adaptive-<NN>-<slug(role)>` (NN = 2-digit 1-based counter over
/// the adaptive tasks), step ids as in `adaptive_steps`, the agent is the
/// team role's agent (else the role name), the title is the planner's title
/// (else the step id), the model is empty. Phase 1 tasks depend on the
/// assess task, each later phase's tasks on all tasks of the phase before;
/// `depends_on` holds those task ids (as pi-crew persists them) and `deps`
/// their plan indices.
std::vector<planned_task> adaptive_tasks(const adaptive_plan& plan,
                                         const team_def& team,
                                         std::string_view assess_task_id,
                                         uint32_t assess_index,
                                         size_t first_index);

/// Like the overload above for tasks appended to `existing`: the assess
/// task is found by task id, else by step id. Throws `input_error` if it is
/// missing or a new task id is already taken.
std::vector<planned_task>
adaptive_tasks(const adaptive_plan& plan, const team_def& team,
               const std::vector<planned_task>& existing,
               std::string_view assess_task_id);

} // namespace crew
