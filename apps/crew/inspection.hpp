#pragma once

// `crew validate`, `crew list`, `crew status` and `crew events`: read-only
// views of the project and its runs.

#include <CLI/CLI.hpp>

#include "common.hpp"

namespace crew::cli {

void add_validate_command(CLI::App& app, command_table& commands);
void add_list_command(CLI::App& app, command_table& commands);
void add_status_command(CLI::App& app, command_table& commands);
void add_events_command(CLI::App& app, command_table& commands);

} // namespace crew::cli
