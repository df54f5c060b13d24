#include "runtime/operations/project.hpp"

#include <fmt/format.h>

#include "messages/errors.hpp"

namespace fs = std::filesystem;

namespace crew {

project_context load_project(const fs::path& cwd,
                             const std::vector<std::string>& overrides) {
  project_context ctx;
  ctx.crew_root = crew_root_for(cwd);
  ctx.project_root = ctx.crew_root.parent_path();
  ctx.config = load_config(ctx.crew_root, user_config_file());
  for (auto& kv : overrides)
    apply_override(ctx.config, kv);
  auto user_root = user_config_root();
  ctx.resources = discover_resources(ctx.crew_root, user_root);
  apply_agent_overrides(ctx.resources, ctx.config.values);
  return ctx;
}

node_options node_options_for(const project_context& ctx) {
  node_options out;
  auto& cfg = ctx.config;
  out.fsync = to_policy(cfg.store.fsync);
  out.metrics_enabled = cfg.observability.enabled;
  out.deadletter_path = (ctx.crew_root / "state" / "deadletter.jsonl").string();
  out.heartbeat.warn_ms = cfg.reliability.heartbeat.warn_ms;
  out.heartbeat.stale_ms = cfg.reliability.heartbeat.stale_ms;
  out.heartbeat.dead_ms = cfg.reliability.heartbeat.dead_ms;
  out.heartbeat_poll_ms = cfg.observability.poll_interval_ms;
  out.notifications_enabled = cfg.notifications.enabled;
  out.notifications = cfg.notifications;
  if (cfg.telemetry_enabled)
    out.notifications_dir = (ctx.crew_root / "state" / "notifications").string();
  if (cfg.telemetry_enabled)
    out.metrics.metrics_dir = (ctx.crew_root / "state" / "metrics").string();
  out.metrics.retention_days = cfg.observability.metric_retention_days;
  if (cfg.otlp.enabled) {
    if (!cfg.otlp.endpoint)
      throw input_error("otlp.endpoint: must be set when otlp.enabled is true");
    out.metrics.otlp = true;
    out.metrics.otlp_endpoint = *cfg.otlp.endpoint;
    out.metrics.otlp_headers = cfg.otlp.headers;
    out.metrics.otlp_interval_ms = cfg.otlp.interval_ms;
  }
  return out;
}

fsync_policy to_policy(fsync_mode mode) noexcept {
  switch (mode) {
    case fsync_mode::none:
      return fsync_policy::none;
    case fsync_mode::always:
      return fsync_policy::always;
    default:
      return fsync_policy::batch;
  }
}

fs::path crew_root_for(const fs::path& cwd) {
  std::error_code ec;
  if (!fs::is_directory(cwd, ec))
    throw input_error(fmt::format("--cwd {}: not a directory", cwd.string()));
  return find_project_root(fs::absolute(cwd)) / ".crew";
}

} // namespace crew
