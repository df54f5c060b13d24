#pragma once

// `crew metrics` (the metric snapshot, from the live serve or the logs) and
// `crew diag` (the redacted diagnostic export of a run).

#include <CLI/CLI.hpp>

#include "common.hpp"

namespace crew::cli {

void add_metrics_command(CLI::App& app, command_table& commands);
void add_diag_command(CLI::App& app, command_table& commands);

} // namespace crew::cli
