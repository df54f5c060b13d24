#pragma once

// Creating a run: resolve and validate its team and workflow into a plan,
// then write the run to disk. Bad input throws input_error *before*
// anything on disk changes.

#include <string>
#include <string_view>
#include <vector>

#include "config/resources.hpp"
#include "config/validate.hpp"
#include "runtime/operations/project.hpp"
#include "runtime/scheduling/concurrency.hpp"
#include "runtime/scheduling/run_setup.hpp"
#include "store/model.hpp"

namespace crew {

/// A validated task graph, not yet on disk.
struct planned_run {
  team_def team;
  workflow_def workflow;
  std::vector<planned_task> plan;
  concurrency_decision concurrency;
  std::vector<validation_issue> warnings;
};

/// Resolves team and workflow (empty workflow: the team's default, else
/// `default`), validates them and builds the plan. Throws input_error naming
/// the unknown or invalid resource.
planned_run plan_run(const project_context& ctx, std::string_view team,
                     std::string_view workflow);

/// Creates the run on disk (plan.json, manifest.json, tasks.json, goal.md,
/// events.jsonl with run.created) and returns what the run actor needs. The
/// returned setup holds the run lock until it is destroyed.
run_setup_ptr prepare_run(const project_context& ctx, const planned_run& pr,
                          const std::string& goal);

} // namespace crew
