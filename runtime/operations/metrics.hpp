#pragma once

// The metric catalogue of a project's runs, read from their logs.

#include <filesystem>
#include <vector>

#include "observability/metrics.hpp"

namespace crew {

/// Derives the metric catalogue from the persisted event logs of every run
/// under `crew_root` (what `crew metrics` shows when no node serves it).
std::vector<metric_family> metrics_from_logs(const std::filesystem::path& crew_root);

} // namespace crew
