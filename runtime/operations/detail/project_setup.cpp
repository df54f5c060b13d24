#include "runtime/operations/detail/project_setup.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "runtime/scheduling/adaptive_plan.hpp"
#include "runtime/scheduling/adaptive_run.hpp"
#include "runtime/workers/pi/model_routing.hpp"
#include "runtime/workers/pi/pi_rpc.hpp"

namespace crew::detail {

namespace {

bool env_is(const char* name, const char* value) {
  auto v = std::getenv(name);
  return v != nullptr && std::strcmp(v, value) == 0;
}

} // namespace

backend_kind backend_for(const crew_config& cfg) {
  if (!cfg.execute_workers || env_is("PI_CREW_EXECUTE_WORKERS", "0")
      || env_is("PI_TEAMS_EXECUTE_WORKERS", "0"))
    return backend_kind::scaffold;
  switch (cfg.runtime.mode) {
    case runtime_mode::scaffold:
      return backend_kind::scaffold;
    case runtime_mode::sim:
      return backend_kind::sim;
    default:
      return backend_kind::command;
  }
}

void fill_workers(run_setup& setup, const project_context& ctx, size_t first) {
  setup.commands.resize(setup.plan.size());
  setup.timeouts_ms.resize(setup.plan.size());
  setup.pi.resize(setup.plan.size());
  setup.engine.max_attempts.resize(setup.plan.size(), 0);
  for (size_t i = first; i < setup.plan.size(); ++i) {
    auto agent = ctx.resources.find_agent(setup.plan[i].agent);
    if (!agent)
      continue;
    setup.commands[i] = agent->command;
    setup.timeouts_ms[i] = agent->timeout_ms;
    setup.engine.max_attempts[i] = agent->max_attempts; // 0: the policy's
    if (!agent->command.empty())
      continue;
    auto& pi = setup.pi[i];
    model_request req;
    req.step_model = setup.plan[i].model;
    req.agent_model = agent->model;
    req.fallback_models = agent->fallback_models;
    pi.models = model_candidates(req).candidates;
    pi.thinking = agent->thinking;
    pi.tools = agent->tools;
    pi.system_prompt = agent->system_prompt;
    pi.replace_system_prompt = !agent->system_prompt_append;
  }
  // pi-crew's responseTimeoutMs (5 min), PI_TEAMS_CHILD_RESPONSE_TIMEOUT_MS
  // overrides it and 0 disables the watchdog.
  if (auto v = std::getenv("PI_TEAMS_CHILD_RESPONSE_TIMEOUT_MS")) {
    uint64_t ms = 0;
    auto [ptr, ec] = std::from_chars(v, v + std::strlen(v), ms);
    if (ec != std::errc{} || *ptr != '\0')
      throw input_error(fmt::format(
        "PI_TEAMS_CHILD_RESPONSE_TIMEOUT_MS: '{}' is not a whole number of "
        "milliseconds", v));
    setup.pi_response_timeout_ms = ms;
  }
  setup.max_task_depth = ctx.config.limits.max_task_depth.value_or(0);
  bool uses_pi = std::any_of(setup.commands.begin(), setup.commands.end(),
                             [](const std::string& c) { return c.empty(); });
  if (uses_pi && !setup.pi_pool && ctx.config.runtime.pi_mode == pi_mode::rpc)
    setup.pi_pool = std::make_shared<pi_rpc_pool>(
      std::max<size_t>(setup.engine.max_concurrent, 1));
}

void apply_workspace(run_setup& setup, const project_context& ctx,
                     bool check_leader) {
  setup.worktrees = setup.manifest.workspace_mode == "worktree";
  if (!setup.worktrees)
    return;
  auto& opts = setup.worktree;
  auto& cfg = ctx.config;
  opts.require_clean_leader = cfg.require_clean_worktree_leader;
  auto wt = cfg.values.value("worktree", nlohmann::json::object());
  opts.setup_hook = wt.value("setupHook", std::string{});
  opts.setup_hook_timeout_ms = wt.value("setupHookTimeoutMs", uint64_t{30000});
  opts.link_node_modules = wt.value("linkNodeModules", false);
  if (check_leader)
    check_worktree_leader(ctx.project_root, opts, ctx.crew_root);
}

void apply_adaptive(run_setup& setup, const project_context& ctx,
                    const team_def* team) {
  auto assess = adaptive_assess_index(setup.manifest.workflow, setup.plan);
  if (assess == UINT32_MAX || team == nullptr)
    return;
  auto support = std::make_shared<adaptive_support>();
  support->team = *team;
  support->allow_repair = adaptive_repair_from_env();
  support->fill_workers = [ctx = std::make_shared<const project_context>(ctx)](
                            run_setup& s, size_t first) {
    fill_workers(s, *ctx, first);
  };
  setup.adaptive = std::move(support);
  setup.engine.adaptive_assess = assess;
}

void apply_config(run_setup& setup, const crew_config& cfg) {
  auto& rel = cfg.reliability;
  setup.deadletter_threshold = rel.deadletter_threshold;
  auto& retry = setup.engine.retry;
  retry.enabled = rel.auto_retry;
  retry.max_attempts = rel.retry_policy.max_attempts;
  retry.backoff_ms = rel.retry_policy.backoff_ms;
  retry.jitter_ratio = rel.retry_policy.jitter_ratio;
  retry.factor = rel.retry_policy.exponential_factor;
  retry.max_backoff_ms = rel.retry_policy.max_backoff_ms;
  retry.retryable_errors = rel.retry_policy.retryable_errors.value_or(
    std::vector<std::string>{});
  setup.snapshot_interval_ms = cfg.store.snapshot_interval_ms;
  setup.checkpoint_interval_ms = cfg.store.snapshot_interval_ms;
  setup.fsync = to_policy(cfg.store.fsync);
  if (cfg.limits.max_run_minutes)
    setup.max_run_ms = uint64_t{*cfg.limits.max_run_minutes} * 60'000;
}

} // namespace crew::detail
