#pragma once

#include <nlohmann/json.hpp>

#include <vector>

#include "observability/metrics.hpp"

namespace crew {

/// A metric snapshot as JSON in pi-crew's shape (inventory §7.1): an array of
/// `{type, name, description, values}`; counter and gauge points are
/// `{labels, value}`, histogram points `{labels, buckets (bounds then
/// "+Inf"), counts, sum, count, quantiles: {p50, p95, p99}}`. Unlike
/// pi-crew, +Inf is the string "+Inf" and an undefined quantile is null.
nlohmann::json metrics_json(const std::vector<metric_family>& families);

/// Keeps the families whose name matches `glob` (`*` matches any run of
/// characters; case-sensitive, as pi-crew's metrics-snapshot filter).
std::vector<metric_family> filter_metrics(std::vector<metric_family> families,
                                          std::string_view glob);

} // namespace crew
