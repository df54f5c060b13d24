#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// `runtime.mode`: how workers execute (inventory §9, DESIGN §6).
enum class runtime_mode : uint8_t {
  automatic = 1, ///< "auto": per agent (command backend or pi)
  scaffold,      ///< no process, placeholder results
  child_process,
  live_session,
  sim, ///< simulated workers (load tests)
};

/// `runtime.groupJoin`.
enum class group_join_mode : uint8_t { off = 1, group, smart };

/// `runtime.piMode`: one pi process per attempt or warm rpc processes.
enum class pi_mode : uint8_t { spawn = 1, rpc };

/// `store.fsync`.
enum class fsync_mode : uint8_t { none = 1, batch, always };

/// `workspaceMode` (and a team's `workspaceMode`).
enum class workspace_mode : uint8_t { single = 1, worktree };

/// Returns the config spelling ("auto", "child-process", ...).
const char* to_string(runtime_mode x) noexcept;
const char* to_string(group_join_mode x) noexcept;
const char* to_string(pi_mode x) noexcept;
const char* to_string(fsync_mode x) noexcept;
const char* to_string(workspace_mode x) noexcept;

/// `limits.*`; an empty optional means "none" (the team/workflow decides).
struct limits_config {
  std::optional<uint32_t> max_concurrent_workers; ///< 1..1024
  bool allow_unbounded_concurrency = false;       ///< false: hard cap 8
  std::optional<uint32_t> max_task_depth;         ///< 1..100
  std::optional<uint32_t> max_children_per_task;  ///< 1..1000
  std::optional<uint32_t> max_run_minutes;        ///< 1..1440
  std::optional<uint32_t> max_retries_per_task;   ///< 1..100
  std::optional<uint32_t> max_tasks_per_run;      ///< 1..10000
  uint64_t heartbeat_stale_ms = 60000;            ///< 1..86400000
};

/// `runtime.*` keys the core uses.
struct runtime_config {
  runtime_mode mode = runtime_mode::automatic;
  bool prefer_live_session = false;
  bool allow_child_process_fallback = true;
  group_join_mode group_join = group_join_mode::smart;
  crew::pi_mode pi_mode = crew::pi_mode::spawn;
};

/// `reliability.retryPolicy.*`.
struct retry_policy_config {
  uint32_t max_attempts = 3;      ///< 1..10
  uint64_t backoff_ms = 1000;     ///< 100..60000
  double jitter_ratio = 0.3;      ///< 0..1
  double exponential_factor = 2;  ///< 1..5
  /// Glob patterns; unset = every error is retryable.
  std::optional<std::vector<std::string>> retryable_errors;
  uint64_t max_backoff_ms = 60000; ///< 100..3600000
};

/// `reliability.heartbeat.*`: the heartbeat gradient thresholds.
struct heartbeat_config {
  uint64_t warn_ms = 30000;
  uint64_t stale_ms = 60000;
  uint64_t dead_ms = 300000;
};

/// `reliability.*`.
struct reliability_config {
  bool auto_retry = false;
  bool auto_recover = false;
  uint32_t deadletter_threshold = 3; ///< consecutive dead ticks, >= 1
  retry_policy_config retry_policy;
  heartbeat_config heartbeat;
};

/// `notifications.*`.
struct notifications_config {
  bool enabled = true;
  std::vector<std::string> severity_filter{"warning", "error", "critical"};
  uint64_t dedup_window_ms = 30000; ///< 1000..86400000
  uint64_t batch_window_ms = 0;     ///< 0..60000
  std::optional<std::string> quiet_hours; ///< "HH:MM-HH:MM"
  uint32_t sink_retention_days = 7;       ///< 1..90
  uint32_t deadletter_alert_per_hour = 3;
};

/// `observability.*`.
struct observability_config {
  bool enabled = true;
  uint64_t poll_interval_ms = 5000;  ///< 1000..60000
  uint32_t metric_retention_days = 7; ///< 1..365
};

/// `otlp.*`.
struct otlp_config {
  bool enabled = false;
  std::optional<std::string> endpoint;
  std::map<std::string, std::string> headers;
  uint64_t interval_ms = 60000; ///< >= 5000
};

/// `store.*` (DESIGN §8).
struct store_config {
  fsync_mode fsync = fsync_mode::batch;
  uint64_t snapshot_interval_ms = 1000; ///< 0..3600000
};

/// `serve.*` (DESIGN §8).
struct serve_config {
  std::string host = "127.0.0.1";
  uint16_t port = 7878;
  std::optional<std::string> token;
};

/// The effective configuration: pi-crew's defaults, then the user file, then
/// the project file, then `--set` overrides. Typed fields hold what the core
/// runtime uses; every accepted key (including pi-crew keys the core ignores:
/// ui.*, autonomous.*, tools.*, control.*, worktree.*, agents.*) is kept in
/// `values`.
struct crew_config {
  bool async_by_default = false;
  bool execute_workers = true; ///< false: scaffold
  uint64_t notifier_interval_ms = 5000;
  bool require_clean_worktree_leader = true;
  std::optional<workspace_mode> workspace; ///< `workspaceMode`; unset: team
  bool telemetry_enabled = true;           ///< `telemetry.enabled`
  limits_config limits;
  runtime_config runtime;
  reliability_config reliability;
  notifications_config notifications;
  observability_config observability;
  otlp_config otlp;
  store_config store;
  serve_config serve;

  /// The merged, validated JSON of all explicitly set keys (an object).
  nlohmann::json values = nlohmann::json::object();

  /// The files that contributed, in merge order.
  std::vector<std::filesystem::path> files;
};

/// Loads `<user_config_file>` (skipped if empty or missing) and then
/// `<project_crew_root>/config.json` (skipped if missing) and merges them:
/// later files win per key, nested objects merge. Throws `input_error` on a
/// JSON syntax error (naming file, line and column), a non-object document,
/// an unknown key, or a wrong-typed or out-of-range value (naming file and
/// key path).
crew_config load_config(const std::filesystem::path& project_crew_root,
                        const std::filesystem::path& user_config_file);

/// Builds a config from one JSON object; `origin` names it in errors.
crew_config config_from_json(const nlohmann::json& values,
                             std::string_view origin);

/// Applies a CLI `--set key=value` (dotted key). The value is parsed as JSON
/// when it parses (true, 3, [..]); otherwise (or for string-typed keys) it is
/// taken as a string; list-typed keys also accept `a,b`. Validates as a file
/// would and throws `input_error` naming `--set <key>`. Typed fields are
/// recomputed from `cfg.values`.
void apply_override(crew_config& cfg, std::string_view key_eq_value);

/// Returns the effective configuration (defaults included, unset optionals
/// omitted) in config.json spelling.
nlohmann::json to_json(const crew_config& cfg);

/// Walks up from `cwd` to the first directory holding a project marker
/// (inventory §2.1); the user's home never counts and ends the walk. Returns
/// `cwd` (absolute) if none is found.
std::filesystem::path find_project_root(const std::filesystem::path& cwd);

/// `$PI_TEAMS_HOME/.pi/agent`, else `$HOME/.pi/agent`; empty if neither is set.
std::filesystem::path user_config_root();

/// `<user_config_root>/extensions/pi-crew/config.json`; empty if no root.
std::filesystem::path user_config_file();

} // namespace crew
