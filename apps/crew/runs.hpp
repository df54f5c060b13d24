#pragma once

// `crew run`, `crew plan`, `crew cancel` and `crew resume`: create, show,
// stop and continue runs. A run executes in the foreground with live
// progress, or in a background crew.

#include <CLI/CLI.hpp>

#include "common.hpp"

namespace crew::cli {

void add_run_command(CLI::App& app, command_table& commands);
void add_plan_command(CLI::App& app, command_table& commands);
void add_cancel_command(CLI::App& app, command_table& commands);
void add_resume_command(CLI::App& app, command_table& commands);

} // namespace crew::cli
