#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "config/config.hpp"    // notifications_config
#include "runtime/supervision/heartbeat.hpp" // heartbeat_thresholds
#include "store/event_log.hpp" // fsync_policy

namespace crew {

/// Where and how often the metric sink exports.
struct metric_sink_options {
  std::string metrics_dir;            ///< `<crew root>/state/metrics`; "" = off
  uint64_t jsonl_interval_ms = 60000; ///< one JSONL snapshot per interval
  uint32_t retention_days = 7;        ///< observability.metricRetentionDays
  bool otlp = false;                  ///< otlp.enabled with an endpoint
  std::string otlp_endpoint;          ///< e.g. http://127.0.0.1:4318/v1/metrics
  std::map<std::string, std::string> otlp_headers;
  uint64_t otlp_interval_ms = 60000;
};

/// How a node (one crew process) runs its shared actors.
struct node_options {
  fsync_policy fsync = fsync_policy::batch;
  metric_sink_options metrics;
  bool metrics_enabled = true; ///< observability.enabled
  /// Where actors record messages nobody handles (reason `undeliverable`):
  /// `<crew root>/state/deadletter.jsonl`; "" = stderr.
  std::string deadletter_path;
  heartbeat_thresholds heartbeat;  ///< reliability.heartbeat.*
  uint64_t heartbeat_poll_ms = 5000; ///< observability.pollIntervalMs
  bool notifications_enabled = false; ///< notifications.enabled
  notifications_config notifications;
  std::string notifications_dir; ///< `<crew root>/state/notifications`; "" = none
};

} // namespace crew
