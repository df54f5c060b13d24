#pragma once

// `crew doctor`: checks that this machine and project can run workers.

#include <string>

namespace crew::cli {

/// Checks the pi CLI, node, the project config, the agents' models, the
/// state root, git for worktree mode and the pi mock, and prints one row per
/// finding (`{"ok": …, "checks": [{check, status, detail, fix}…]}` with
/// `json`). Writes nothing. Returns 0 when no row is an error, 1 otherwise;
/// throws input_error when `cwd` is not a directory.
int cmd_doctor(const std::string& cwd, bool json);

} // namespace crew::cli
