#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "observability/metrics.hpp"

namespace crew {

/// Value of the `Content-Type` header for `prometheus_text` output.
constexpr const char* prometheus_content_type
    = "text/plain; version=0.0.4; charset=utf-8";

/// Renders snapshots in the Prometheus text exposition format 0.0.4.
///
/// - Names: dots become underscores. Counters get a `_total` suffix unless
///   the name already ends in `_total`. The suffixed name is used in both
///   `# TYPE` and the sample lines (`# TYPE crew_run_count_total counter`). The
///   0.0.4 parser requires the TYPE name to match the samples, and
///   `promtool check metrics` (2.42) reports a counter without `_total`.
/// - `# HELP` (escaping `\` and newline) is written only for non-empty help,
///   as in prometheus-cpp. `# TYPE` is written for every family, even one
///   without samples.
/// - Label values escape `\`, `"` and newline. Labels keep their stored
///   (sorted) order, and a histogram's `le` comes last.
/// - Histograms: cumulative `_bucket` lines in ascending `le`, then
///   `le="+Inf"` (equal to `_count`), `_sum` and `_count`.
/// - Numbers: integral values print as integers (no exponent). Other values
///   use the shortest round-trip form, and non-finite ones are written as
///   `NaN`, `+Inf` and `-Inf`. Output does not depend on the locale.
/// - Every line ends with `\n`; no timestamps.
std::string prometheus_text(const std::vector<metric_family>& families);

/// Appends `value` formatted as in `prometheus_text` to `out`.
void append_prometheus_number(std::string& out, double value);

/// Appends `value` with `\`, `"` and newline escaped for a label value.
void append_prometheus_label_value(std::string& out, std::string_view value);

} // namespace crew
