#pragma once

// `crew doctor`: checks that this machine and project can run workers.

#include <CLI/CLI.hpp>

#include "common.hpp"

namespace crew::cli {

void add_doctor_command(CLI::App& app, command_table& commands);

} // namespace crew::cli
