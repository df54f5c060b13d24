#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "observability/metrics.hpp"

namespace crew {

/// Resource and instrumentation scope of an OTLP export.
struct otlp_resource {
  /// Resource attributes (string-valued). `service.name=crew` is always
  /// emitted first; an entry named `service.name` here replaces its value.
  std::vector<std::pair<std::string, std::string>> attributes;
  std::string scope_name = "crew";
  std::string scope_version = "0.1.0";
};

/// Encodes snapshots as an OTLP/HTTP JSON `ExportMetricsServiceRequest`
/// body for `POST /v1/metrics` (`Content-Type: application/json`), following
/// the JSON Protobuf Encoding of opentelemetry-proto:
///
/// - lowerCamelCase keys, enums as integers, 64-bit integers
///   (`startTimeUnixNano`, `timeUnixNano`, `count`, `bucketCounts`) as
///   decimal strings. Doubles are JSON numbers, and non-finite ones are the
///   strings `NaN`, `Infinity` and `-Infinity` (proto3 JSON mapping);
/// - counters become `sum` with `aggregationTemporality: 2` (cumulative) and
///   `isMonotonic: true`, so a lost export loses nothing. Gauges become
///   `gauge`, and histograms become `histogram` (cumulative) with
///   `bucketCounts` (`explicitBounds.size() + 1` entries) and `explicitBounds`;
/// - metric names keep their dots. A name ending in `_ms` gets
///   `unit: "ms"`, and no unit is set otherwise;
/// - label values become string attributes.
///
/// Timestamps are nanoseconds since the Unix epoch: the start of the
/// cumulative interval (session start) and the collection time.
std::string otlp_metrics_json(const std::vector<metric_family>& families,
                              const otlp_resource& res,
                              uint64_t start_time_unix_nano,
                              uint64_t time_unix_nano);

/// Result of `validate_otlp_metrics_json`; `problems` name a JSON path each.
struct otlp_validation {
  bool ok = false;
  std::vector<std::string> problems;
};

/// Checks an OTLP/HTTP JSON metrics body against the encoding rules that
/// `otlp_metrics_json` follows (for test receivers). It checks the
/// structure (`resourceMetrics[].scopeMetrics[].metrics[]`) and
/// lowerCamelCase keys. Each metric has a name and exactly one of `sum`,
/// `gauge` and `histogram`. Sum and histogram temporality must be 1 or 2,
/// and `isMonotonic` must be a boolean. Data point timestamps must be
/// strings of digits, and a number point has exactly one of `asDouble`
/// (number) and `asInt` (decimal string). For a histogram point, `count` and
/// `bucketCounts` are strings of digits, and
/// `bucketCounts.size() == explicitBounds.size() + 1`. The bounds are
/// strictly increasing and the bucket counts add up to `count`. Attributes
/// are `{key, value: {<kind>Value}}`.
otlp_validation validate_otlp_metrics_json(std::string_view body);

} // namespace crew
