#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/resources.hpp"

namespace crew {

/// Returns the `Source/pi-*` projects under `cwd` as sorted relative paths
/// (`Source/pi-foo`). Only real directories count: symlinks are skipped, as
/// pi-crew's `Dirent.isDirectory()` does. A missing or unreadable `Source`
/// directory yields an empty list.
std::vector<std::string> source_pi_projects(const std::filesystem::path& cwd);

/// Returns the number of explore shards for `projects` projects:
/// `min(8, max(4, ceil(P/3)))`, capped by P (0 for no project).
size_t research_shard_count(size_t projects);

/// Returns the steps replacing the `parallel-research` workflow for
/// `projects` (inventory §4.10), or an empty list if there is no project:
/// `discover` (explorer, parallel group `inventory`, no deps, lists every
/// project); `explore-shard-<i>` (1-based; explorer, parallel group
/// `explore`, no deps, `reads` = its projects, dealt round-robin in the
/// given order); `synthesize` (analyst, depends on every shard); `write`
/// (writer, depends on `synthesize`, output `research-summary.md`). Task
/// texts keep the `{goal}` placeholder.
std::vector<workflow_step>
parallel_research_steps(const std::vector<std::string>& projects);

/// Returns `parallel_research_steps(source_pi_projects(cwd))`, or
/// `std::nullopt` when `cwd` has no `Source/pi-*` directory (the workflow's
/// own steps then apply). The caller applies it only to the workflow named
/// `parallel-research`.
std::optional<std::vector<workflow_step>>
expand_parallel_research(const std::filesystem::path& cwd);

} // namespace crew
