#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/resources.hpp"
#include "config/validate.hpp"
#include "store/model.hpp"

namespace crew {

/// Normalizes a step id as pi-crew does: lowercase, every run of characters
/// outside [a-z0-9-] becomes `-`, leading/trailing `-` trimmed, empty ->
/// `task`.
std::string normalize_step_id(std::string_view step_id);

/// Builds the task graph of a workflow run by a team: task ids
/// `<NN>_<normalized step id>`, each role's agent from the team, deps
/// resolved to indices. The workflow must already be validated for the team.
std::vector<planned_task> build_plan(const team_def& team,
                                     const workflow_def& workflow);

/// The step text of `workflow` that is not valid UTF-8, one error per field
/// (`id`, `role`, `task`, `model`, `output`, `parallelGroup`, `dependsOn`,
/// `reads`) with the workflow file and line (the task's own line for `task`).
/// Such text cannot go into the plan and the log as it is, so it is an input
/// error before a run is created.
std::vector<validation_issue> step_text_issues(const workflow_def& workflow);

/// Shapes of synthetic graphs for load tests.
enum class graph_shape : uint8_t {
  fanout = 1, ///< one root, every other task depends on it
  chain,      ///< each task depends on the previous one
  diamond,    ///< root -> n-2 parallel tasks -> one join
  random,     ///< each task depends on up to 3 random earlier tasks
};

bool from_string(std::string_view str, graph_shape& x) noexcept;
const char* to_string(graph_shape x) noexcept;

/// A synthetic plan of `n` sim tasks (ids `t<index>`), deterministic per seed.
std::vector<planned_task> synthetic_plan(graph_shape shape, uint32_t n,
                                         uint64_t seed);

} // namespace crew
