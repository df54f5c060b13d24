#pragma once

#include <string>
#include <string_view>

namespace crew {

/// Checks pi-crew's metric name rule `^crew\.[a-z]+\.[a-z][a-z_]*$`
/// (e.g. `crew.task.retry_count`): the prefix `crew`, one lowercase
/// subsystem word and a lowercase snake_case name.
bool is_valid_metric_name(std::string_view name) noexcept;

/// Checks a label name against `[a-zA-Z_][a-zA-Z0-9_]*` and rejects the
/// `__` prefix, which Prometheus reserves for internal labels.
bool is_valid_label_name(std::string_view name) noexcept;

/// Maps a metric name to its Prometheus spelling: every `.` becomes `_`
/// (`crew.task.retry_count` -> `crew_task_retry_count`), and a millisecond
/// measure is exposed in Prometheus' base unit (`crew.run.duration_ms` ->
/// `crew_run_duration_seconds`, values scaled by `prometheus_scale`), as
/// `promtool check metrics` requires. Type-dependent suffixes such as
/// `_total` are added by the serializer, not here.
std::string prometheus_name(std::string_view name);

/// The factor that converts a metric's values to its Prometheus unit: 0.001
/// for `*_ms` measures, 1 otherwise.
double prometheus_scale(std::string_view name) noexcept;

/// Whole-string glob match with `*` wildcards (case-insensitive when
/// `icase`): metric filters, retryable-error patterns.
bool glob_match(std::string_view pattern, std::string_view text,
                bool icase) noexcept;

/// A label name in Prometheus' snake_case (`runId` -> `run_id`).
std::string prometheus_label_name(std::string_view name);

} // namespace crew
