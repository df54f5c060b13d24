#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/resources.hpp"
#include "runtime/scheduling/run_setup.hpp"

namespace crew {

/// The summary of a run whose planner produced no usable plan (pi-crew's).
inline constexpr const char* adaptive_blocked_summary
  = "Adaptive planner did not produce a valid subagent plan.";

/// What the run actor needs to turn a planner's output into tasks of the
/// running run (workflow `implementation`, inventory §4.9).
struct adaptive_support {
  team_def team;            ///< roles -> agents of the run's team
  bool allow_repair = true; ///< see adaptive_repair_from_env
  /// Fills the per-task worker fields of `setup` (commands, timeouts, pi
  /// invocation, max attempts) for the tasks from index `first` on.
  std::function<void(run_setup& setup, size_t first)> fill_workers;
};

/// One event to record, in the engine's terms.
struct adaptive_event {
  std::string type;
  std::string message;
  std::string data; ///< a JSON object
};

/// What a planner's output does to its run.
struct adaptive_injection {
  /// To record first, in order: `adaptive.plan_repaired`, or
  /// `adaptive.plan_repair_failed` and/or `adaptive.plan_missing`.
  std::vector<adaptive_event> events;
  /// The setup grown by the planner's tasks (plan, worker fields); null when
  /// the output holds no usable plan: the run then ends blocked with
  /// `adaptive_blocked_summary`.
  std::shared_ptr<run_setup> setup;
  /// `adaptive.plan_injected`: message and data `{phases: [{name, count,
  /// roles}], tasks: [plan.json entries]}` (replay rebuilds the plan from
  /// `tasks`).
  std::string message;
  std::string data;
  /// metadata/adaptive-repair.json when repair produced the plan, else empty.
  std::string repair_json;
};

/// Reads the result of the planner task `assess_index` of `setup` (its
/// `results/<task>` artifact) and, when it holds a plan (strictly, or
/// repaired if `support.allow_repair`), builds the grown setup: the plan's
/// tasks appended (ids `adaptive-NN-<role>`, phase 1 after the planner, each
/// later phase after all tasks of the phase before), their worker fields
/// filled. Reads one file; writes nothing.
adaptive_injection prepare_adaptive_injection(const run_setup& setup,
                                              uint32_t assess_index);

/// The plan index of the planner task when `plan` belongs to the workflow
/// `implementation` and holds no adaptive task yet (a resumed run whose
/// plan was injected is not injected again): the task of step `assess`.
/// UINT32_MAX otherwise.
uint32_t adaptive_assess_index(std::string_view workflow,
                               const std::vector<planned_task>& plan);

} // namespace crew
