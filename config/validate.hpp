#pragma once

#include "config/resources.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// One finding of a resource validation (inventory §3.8).
struct validation_issue {
  bool error = true;   ///< false: a warning
  std::string file;    ///< the resource's path
  size_t line = 0;     ///< 1-based line in `file`; 0 = unknown
  std::string where;   ///< e.g. "step 'b'", "role 'x'"; may be empty
  std::string message;

  /// Returns "file[:line]: where: message" (without an empty `where`).
  std::string to_string() const;

  friend bool operator==(const validation_issue&,
                         const validation_issue&) = default;
};

/// Checks a workflow against a team: duplicate step ids, step roles that the
/// team lacks, `dependsOn` naming an unknown step, dependency cycles
/// (`Workflow dependency cycle detected: a -> b -> a.`). De-duplicated.
std::vector<validation_issue>
validate_workflow_for_team(const team_def& team, const workflow_def& workflow);

/// Checks a workflow on its own: duplicate step ids, unknown `dependsOn`,
/// cycles, and a warning when it has no steps.
std::vector<validation_issue> validate_workflow(const workflow_def& workflow);

/// Validates everything: each workflow on its own; each team's roles against
/// the agents and its `defaultWorkflow` (existence, then against the team);
/// model strings (warnings). De-duplicated, errors and warnings in discovery
/// order.
std::vector<validation_issue> validate_resources(const resource_set& set);

/// Returns true iff `model` is a plausible model id: no whitespace and no empty
/// `provider/model` segment.
bool is_valid_model_string(std::string_view model) noexcept;

/// True iff `name` is non-empty, has no `/`, `\` or `..`, does not start with
/// `.` or `-`, and consists of `[A-Za-z0-9._-]` only.
bool is_safe_name(std::string_view name) noexcept;

} // namespace crew
