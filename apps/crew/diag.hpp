#pragma once

// `crew diag RUN`: the redacted diagnostic export of a run.

#include <string>

namespace crew::cli {

/// Writes the diagnostic report of `run_id` (runtime/operations/diagnostics.hpp) and
/// prints its path (`{"path": …}` with `json`). Throws input_error for an
/// invalid or unknown run id.
int cmd_diag(const std::string& cwd, const std::string& run_id, bool json);

} // namespace crew::cli
