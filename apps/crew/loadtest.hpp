#pragma once

// `crew loadtest`: a run of simulated workers, measured (throughput,
// latency, memory, a raw CAF baseline) and checked against its log.

#include <CLI/CLI.hpp>

#include "common.hpp"

namespace crew::cli {

void add_loadtest_command(CLI::App& app, command_table& commands);

} // namespace crew::cli
