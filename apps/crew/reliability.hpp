#pragma once

// `crew cleanup`, `crew verify`, `crew recover` and `crew deadletter`, and
// the look for interrupted runs of a node starting on a state root.

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "crew/crew.hpp"

namespace crew::cli {

void add_cleanup_command(CLI::App& app, command_table& commands);
void add_verify_command(CLI::App& app, command_table& commands);
void add_recover_command(CLI::App& app, command_table& commands);
void add_deadletter_command(CLI::App& app, command_table& commands);

/// A node starting on a state root looks for interrupted runs: with
/// reliability.autoRecover each is recovered by a background crew, else the
/// user is told how to.
void check_interrupted(const crew::project_context& ctx);

} // namespace crew::cli
