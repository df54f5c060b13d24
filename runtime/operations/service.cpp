#include "runtime/operations/service.hpp"

#include <cerrno>
#include <charconv>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <map>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "runtime/supervision/event_metrics.hpp"
#include "runtime/workers/pi/model_routing.hpp"
#include "runtime/workers/pi/pi_rpc.hpp"
#include "runtime/scheduling/adaptive_plan.hpp"
#include "runtime/scheduling/adaptive_run.hpp"
#include "runtime/scheduling/research_expansion.hpp"
#include "runtime/workers/process.hpp"
#include "store/atomic_file.hpp"
#include "store/clock.hpp"
#include "store/correlation.hpp"
#include "store/deadletter.hpp"
#include "store/event_log.hpp"
#include "store/json_writer.hpp"
#include "store/snapshot.hpp"
#include "store/utf8.hpp"

namespace fs = std::filesystem;

namespace crew {

namespace {

// -- run lock -----------------------------------------------------------------

struct lock_owner {
  int64_t pid = 0;
  uint64_t start = 0;
  bool handed_over = false; ///< written by hand_over_run_lock, not yet adopted
};

lock_owner read_lock(const fs::path& path) {
  lock_owner out;
  std::error_code ec;
  if (!fs::exists(path, ec))
    return out;
  try {
    auto j = nlohmann::json::parse(read_file(path));
    out.pid = j.value("pid", int64_t{0});
    out.start = j.value("startTime", uint64_t{0});
    out.handed_over = j.value("handedOver", false);
  } catch (...) {
    // unreadable lock: treat as stale
  }
  return out;
}

bool owner_alive(const lock_owner& o) {
  if (o.pid <= 0 || !process_alive(static_cast<int>(o.pid)))
    return false;
  // A reused pid is not the owner: compare process start times.
  return o.start == 0
         || process_start_time(static_cast<int>(o.pid)) == o.start;
}

/// Holds `run.lock` (O_EXCL, {pid, startTime}) until destroyed, unless it
/// was handed over to another process.
struct run_lock {
  fs::path path;
  bool handed_over = false;
  ~run_lock() {
    if (handed_over)
      return;
    std::error_code ec;
    fs::remove(path, ec);
  }
};

std::string lock_body(int64_t pid, bool handed_over = false) {
  return fmt::format(R"({{"pid":{},"startTime":{},"createdAt":"{}"{}}})", pid,
                     process_start_time(static_cast<int>(pid)), iso_now(),
                     handed_over ? R"(,"handedOver":true)" : "");
}

/// Creates `path` with `body` atomically: written to a private temp file,
/// then hard-linked into place (fails with EEXIST if the lock exists), so no
/// reader ever sees an empty lock. Returns 0 or errno.
int create_with_content(const fs::path& path, const std::string& body) {
  auto tmp = path;
  tmp += fmt::format(".{}.tmp", ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return errno;
  auto err = write_all(fd, body);
  ::close(fd);
  if (err == 0 && ::link(tmp.c_str(), path.c_str()) != 0)
    err = errno;
  ::unlink(tmp.c_str());
  return err;
}

std::shared_ptr<void> acquire_lock(const fs::path& path, std::string_view run_id) {
  for (int tries = 0; tries < 3; ++tries) {
    auto err = create_with_content(path, lock_body(::getpid()));
    if (err == 0) {
      auto lock = std::make_shared<run_lock>();
      lock->path = path;
      return lock;
    }
    if (err != EEXIST)
      throw io_error(fmt::format("{}: {}", path.string(), std::strerror(err)));
    auto owner = read_lock(path);
    if (owner.handed_over && owner.pid == ::getpid() && owner_alive(owner)) {
      // Handed over to this process by the one that created the run.
      write_file_atomic(path, lock_body(owner.pid));
      auto lock = std::make_shared<run_lock>();
      lock->path = path;
      return lock;
    }
    if (owner_alive(owner))
      throw input_error(fmt::format(
        "run '{}' is being executed by process {} (see {}); cancel it first",
        run_id, owner.pid, path.string()));
    // Stale: its owner is gone. Move it aside and make sure what we moved is
    // the stale lock we judged, not a fresh one another process just took.
    auto aside = path;
    aside += fmt::format(".stale.{}", ::getpid());
    if (::rename(path.c_str(), aside.c_str()) != 0)
      continue; // someone else moved it first: look again
    auto moved = read_lock(aside);
    if (moved.pid != owner.pid || moved.start != owner.start) {
      // A live lock: put it back (link fails only if yet another appeared).
      if (::link(aside.c_str(), path.c_str()) != 0) {
        ::unlink(aside.c_str());
        throw input_error(fmt::format(
          "run '{}' is being taken by another process; try again", run_id));
      }
      ::unlink(aside.c_str());
      continue;
    }
    ::unlink(aside.c_str());
  }
  throw io_error(fmt::format("{}: cannot take the run lock", path.string()));
}

// -- helpers ------------------------------------------------------------------

bool env_is(const char* name, const char* value) {
  auto v = std::getenv(name);
  return v != nullptr && std::strcmp(v, value) == 0;
}

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

/// One event line written outside a run actor (run.created, an offline
/// cancel), with the run's correlation ids: run-level events carry the run
/// span, task events the task span.
std::string event_line(std::string_view type, std::string_view run_id,
                       std::string_view task_id, std::string_view message,
                       std::string_view data, uint64_t seq,
                       uint32_t task_index = UINT32_MAX) {
  std::string out;
  event_fields ev;
  auto ids = correlation::for_run(run_id);
  ev.trace_hi = ids.trace_hi;
  ev.trace_lo = ids.trace_lo;
  if (task_index == UINT32_MAX) {
    ev.span_id = ids.run_span;
  } else {
    ev.span_id = ids.task_span(task_index);
    ev.parent_span_id = ids.run_span;
  }
  ev.type = type;
  ev.run_id = run_id;
  ev.task_id = task_id;
  ev.message = message;
  ev.data_json = data;
  ev.seq = seq;
  ev.time = std::chrono::system_clock::now();
  append_event_line(out, ev);
  return out;
}

/// Appends the tasks a replay found in adaptive.plan_injected events (not
/// yet in plan.json: the owner died before rewriting it). True if any.
bool grow_plan(std::vector<planned_task>& plan, replay_state& replay,
               const run_paths& paths) {
  if (replay.added.empty())
    return false;
  for (auto& t : replay.added)
    plan.push_back(std::move(t));
  replay.added.clear();
  try {
    resolve_deps(plan, paths.events().string());
  } catch (const input_error& e) {
    throw input_error(errc::corrupt_log, e.what());
  }
  return true;
}

void write_snapshots(const run_paths& paths, const run_manifest& m,
                     const std::vector<planned_task>& plan,
                     const std::vector<task_state>& states) {
  write_file_atomic(paths.tasks(), tasks_json(m.run_id, plan, states, m.cwd));
  write_file_atomic(paths.manifest(), manifest_json(m));
}

/// Kills the process groups of workers whose owner died (recorded by
/// `task.worker` events of attempts that never finished), so that no worker
/// of a cancelled or resumed run keeps running. A pid whose start time does
/// not match was reused by an unrelated process and is left alone.
template <class Tasks>
void kill_orphaned_workers(const Tasks& tasks) {
  for (auto& t : tasks) {
    if (t.status != task_status::running || t.worker_pid <= 0)
      continue;
    if (process_alive(t.worker_pid)
        && process_start_time(t.worker_pid) == t.worker_start)
      kill_process_group(t.worker_pid, SIGKILL);
  }
}

/// Appends to deadletter.jsonl the entries of `crew.task.deadletter` events
/// that a crash kept out of the file (the run actor writes the file after
/// the events are durable, without an fsync of its own).
/// `events` are the log's `crew.task.deadletter` events (all of them, or
/// those after a checkpoint, whose earlier entries are known to be on disk).
void repair_deadletters(const run_paths& paths, std::string_view run_id,
                        const std::vector<tail_report::deadletter_event>& events) {
  if (events.empty())
    return;
  std::map<std::string, int> in_file; // "<task>|<reason>|<attempts>" -> count
  // A torn last entry is skipped: rewritten below since its event is durable.
  for (auto& j : read_deadletters(paths.deadletter(), [](size_t) {}))
    ++in_file[fmt::format("{}|{}|{}", j.value("taskId", ""), j.value("reason", ""),
                          j.value("attempts", 0))];
  std::string missing;
  auto trace = correlation::for_run(run_id).trace_hex();
  for (auto& ev : events) {
    auto data = nlohmann::json::parse(ev.data, nullptr, false);
    if (data.is_discarded())
      continue;
    auto key = fmt::format("{}|{}|{}", ev.task_id, data.value("reason", ""),
                           data.value("attempts", 0));
    if (in_file[key]-- > 0)
      continue;
    nlohmann::json line{{"taskId", ev.task_id},
                        {"runId", run_id},
                        {"reason", data.value("reason", "")},
                        {"attempts", data.value("attempts", 0)},
                        {"lastError", data.value("lastError", "")},
                        {"timestamp", ev.time},
                        {"traceId", trace}};
    missing += line.dump() + "\n";
  }
  if (!missing.empty())
    append_file(paths.deadletter(), missing);
}

/// The `crew.task.deadletter` events of the whole log.
std::vector<tail_report::deadletter_event> deadletter_events(const run_paths& paths) {
  std::vector<tail_report::deadletter_event> out;
  for_each_event(paths.events(), [&](const event_view& ev) {
    if (ev.type == "crew.task.deadletter")
      out.push_back({std::string{ev.task_id}, std::string{ev.time},
                     std::string{ev.data_raw}});
  });
  return out;
}

/// Rewrites manifest.json and tasks.json from a fresh replay after events
/// were appended outside a run actor (offline cancel, decline, deadletter).
void refresh_snapshots(const run_paths& paths, const run_view& view) {
  auto replay = replay_log(paths.events(), view.plan);
  auto m = view.manifest;
  m.status = replay.status;
  m.summary = replay.summary;
  m.updated_at = iso_now();
  m.seq = replay.last_seq;
  m.owner_pid = 0;
  write_snapshots(paths, m, view.plan, replay.tasks);
}

void fill_manifest_paths(run_manifest& m, const run_paths& paths) {
  m.state_root = paths.state_dir.string();
  m.artifacts_root = paths.artifacts_dir.string();
  m.tasks_path = paths.tasks().string();
  m.events_path = paths.events().string();
}

/// Requests left for a previous owner (it ended or died before reading
/// them) must not act on the next one: once the lock is ours, drop those not
/// addressed to this process (a run handed over to us may already have one).
void drop_stale_requests(const run_paths& paths) {
  std::error_code ec;
  auto me = static_cast<int64_t>(::getpid());
  if (fs::exists(paths.cancel_request(), ec)) {
    int64_t owner = 0;
    try {
      owner = nlohmann::json::parse(read_file(paths.cancel_request()))
                .value("owner", int64_t{0});
    } catch (const std::exception&) {
      // unreadable: stale
    }
    if (owner != me)
      fs::remove(paths.cancel_request(), ec);
  }
  if (fs::exists(paths.deadletter_request(), ec)) {
    std::string text;
    try {
      text = read_file(paths.deadletter_request());
    } catch (const std::exception&) {
      // nop
    }
    if (text.find(fmt::format("\t{}\n", me)) == std::string::npos)
      fs::remove(paths.deadletter_request(), ec);
  }
}

/// Fills backend-specific parts of a setup from the current resources, for
/// the tasks from `first` on (a plan grown by an adaptive planner).
void fill_workers(run_setup& setup, const project_context& ctx,
                  size_t first = 0) {
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

/// Worktree mode from the config (`requireCleanWorktreeLeader`,
/// `worktree.*`); for a new run the leader must be usable before anything
/// is written.
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

/// Workflow `implementation` whose planner has not been injected yet: how
/// the run actor grows the plan from the planner's output.
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

} // namespace

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

std::vector<metric_family> metrics_from_logs(const fs::path& crew_root) {
  metric_registry registry;
  event_metrics mapping{registry};
  for (auto& id : list_run_ids(crew_root)) {
    try {
      auto paths = make_run_paths(crew_root, id);
      auto m = parse_manifest(read_file(paths.manifest()), paths.manifest().string());
      auto plan = std::make_shared<std::vector<planned_task>>(
        parse_plan(read_file(paths.plan()), paths.plan().string()));
      mapping.apply_log(id, m.team, plan, paths.events().string());
    } catch (const input_error& e) {
      // A damaged run must not hide the others' metrics; say which.
      std::fprintf(stderr, "crew: metrics: skipping run %s: %s\n", id.c_str(),
                   e.what());
    }
  }
  return registry.collect();
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

planned_run plan_run(const project_context& ctx, std::string_view team_name,
                     std::string_view workflow_name) {
  planned_run pr;
  auto team = ctx.resources.find_team(team_name);
  if (team == nullptr) {
    std::string known;
    for (auto& [name, t] : ctx.resources.teams)
      known += (known.empty() ? "" : ", ") + name;
    throw input_error(errc::not_found,
                      fmt::format("unknown team '{}' (known: {})", team_name,
                                  known));
  }
  pr.team = *team;
  std::string wf_name{workflow_name};
  if (wf_name.empty())
    wf_name = team->default_workflow.empty() ? "default" : team->default_workflow;
  auto workflow = ctx.resources.find_workflow(wf_name);
  if (workflow == nullptr) {
    std::string known;
    for (auto& [name, w] : ctx.resources.workflows)
      known += (known.empty() ? "" : ", ") + name;
    throw input_error(errc::not_found,
                      fmt::format("unknown workflow '{}' (known: {})", wf_name,
                                  known));
  }
  pr.workflow = *workflow;
  // pi-crew's parallel-research expansion (inventory §4.10): with
  // Source/pi-* projects, one explore shard per few projects.
  if (pr.workflow.name == "parallel-research")
    if (auto steps = expand_parallel_research(ctx.project_root))
      pr.workflow.steps = std::move(*steps);
  std::string errors;
  for (auto& issue : validate_workflow_for_team(*team, pr.workflow)) {
    if (issue.error)
      errors += (errors.empty() ? "" : "\n") + issue.to_string();
    else
      pr.warnings.push_back(issue);
  }
  for (auto& role : team->roles)
    if (ctx.resources.find_agent(role.agent) == nullptr)
      errors += (errors.empty() ? "" : "\n")
                + fmt::format("{}: role '{}': unknown agent '{}'", team->path,
                              role.name, role.agent);
  for (auto& issue : step_text_issues(pr.workflow)) // before any file holds it
    errors += (errors.empty() ? "" : "\n") + issue.to_string();
  if (!errors.empty())
    throw input_error(errors);
  if (pr.workflow.steps.empty())
    throw input_error(fmt::format("{}: workflow '{}' has no steps",
                                  workflow->path, workflow->name));
  pr.plan = build_plan(*team, pr.workflow);
  concurrency_inputs in;
  in.workflow_name = workflow->name;
  in.workflow_max = workflow->max_concurrency;
  in.team_max = team->max_concurrency;
  in.limit_max = ctx.config.limits.max_concurrent_workers.value_or(0);
  in.allow_unbounded = ctx.config.limits.allow_unbounded_concurrency;
  pr.concurrency = resolve_concurrency(in);
  return pr;
}

run_setup_ptr prepare_run(const project_context& ctx, const planned_run& pr,
                          const std::string& goal) {
  if (goal.empty())
    throw input_error("--goal: must not be empty");
  if (auto bad = find_invalid_utf8(goal); bad != std::string::npos)
    throw input_error(fmt::format("--goal: not valid UTF-8 (byte 0x{:02X} at offset {})",
                                  static_cast<unsigned char>(goal[bad]), bad));
  auto setup = std::make_shared<run_setup>();
  auto now = std::chrono::system_clock::now();
  auto run_id = new_run_id(now);
  setup->paths = make_run_paths(ctx.crew_root, run_id);
  auto& m = setup->manifest;
  m.run_id = run_id;
  m.team = pr.team.name;
  m.workflow = pr.workflow.name;
  m.goal = goal;
  m.status = run_status::queued;
  m.workspace_mode = ctx.config.workspace
                       ? to_string(*ctx.config.workspace)
                       : pr.team.workspace_mode;
  m.created_at = m.updated_at = iso_time(now);
  m.cwd = ctx.project_root.string();
  fill_manifest_paths(m, setup->paths);
  setup->backend = backend_for(ctx.config);
  m.runtime_mode = to_string(setup->backend);
  m.owner_pid = ::getpid();
  m.owner_start = process_start_time(static_cast<int>(m.owner_pid));
  m.summary = "Run created.";
  setup->plan = pr.plan;
  setup->engine.max_concurrent = pr.concurrency.max_concurrent;
  setup->engine.runtime = m.runtime_mode;
  apply_config(*setup, ctx.config);
  fill_workers(*setup, ctx);
  apply_adaptive(*setup, ctx, &pr.team);
  apply_workspace(*setup, ctx, setup->backend == backend_kind::command);
  // Everything is validated: from here on the run exists on disk.
  fs::create_directories(setup->paths.state_dir);
  fs::create_directories(setup->paths.artifacts_dir);
  setup->lock = acquire_lock(setup->paths.lock(), run_id);
  write_plan(setup->paths, setup->plan);
  write_file_atomic(setup->paths.artifacts_dir / "goal.md", goal + "\n");
  {
    auto log = event_log_writer::open(setup->paths.events());
    std::string data = R"({"team":)";
    append_json_string(data, m.team);
    data += R"(,"workflow":)";
    append_json_string(data, m.workflow);
    data += fmt::format(R"(,"taskCount":{},"concurrency":{},"concurrencyReason":)",
                        setup->plan.size(), pr.concurrency.max_concurrent);
    append_json_string(data, pr.concurrency.reason);
    data += '}';
    log.append(event_line("run.created", run_id, {}, "Run created.", data, 1), 1);
    log.sync();
  }
  m.seq = 1;
  write_snapshots(setup->paths, m, setup->plan,
                  std::vector<task_state>(setup->plan.size()));
  return setup;
}

run_view load_run(const fs::path& crew_root, std::string_view run_id) {
  require_valid_run_id(run_id);
  run_view view;
  auto paths = make_run_paths(crew_root, run_id);
  std::error_code ec;
  if (!fs::is_directory(paths.state_dir, ec))
    throw input_error(errc::not_found,
                      fmt::format("unknown run id '{}' (no {})", run_id,
                                  paths.state_dir.string()));
  view.manifest = parse_manifest(read_file(paths.manifest()),
                                 paths.manifest().string());
  view.plan = parse_plan(read_file(paths.plan()), paths.plan().string());
  view.replay = replay_log(paths.events(), view.plan);
  grow_plan(view.plan, view.replay, paths);
  auto owner = read_lock(paths.lock());
  view.owner_alive = owner_alive(owner);
  view.owner_pid = owner.pid;
  return view;
}

namespace {

/// A run's state at the end of its log, for resume and recovery.
struct resume_view {
  run_manifest manifest;
  std::vector<planned_task> plan;
  run_checkpoint state;      ///< after the last event
  log_position trusted;      ///< the prefix of the log known to be valid
  uint64_t checkpoint_seq = 0; ///< checkpoint.bin used, 0: full replay
  /// The log's deadletter events not known to be in deadletter.jsonl.
  std::vector<tail_report::deadletter_event> deadletters;
};

/// Loads a run for resume: checkpoint.bin plus the events after it when
/// they fit together (the cost then follows the tail, not the run), else a
/// replay of the whole log. The plan is built on a second thread meanwhile:
/// the tail's task ids are resolved from plan.bin directly.
resume_view load_for_resume(const run_paths& paths) {
  resume_view v;
  v.manifest = parse_manifest(read_file(paths.manifest()),
                              paths.manifest().string());
  std::exception_ptr plan_error;
  std::thread loader{[&] {
    try {
      v.plan = load_plan(paths);
    } catch (...) {
      plan_error = std::current_exception();
    }
  }};
  struct joiner {
    std::thread& t;
    ~joiner() {
      if (t.joinable())
        t.join();
    }
  } join_on_exit{loader};
  auto plan_ready = [&] {
    if (loader.joinable())
      loader.join();
    if (plan_error)
      std::rethrow_exception(plan_error);
  };
  std::error_code ec;
  auto plan_json_size = fs::file_size(paths.plan(), ec);
  auto ck = read_checkpoint(paths.checkpoint());
  if (ck && !ec)
    if (auto end = find_seq_end(paths.events(), ck->seq)) {
      auto lines = ck->seq;
      auto rep = replay_tail(paths.events(), *end, [&](task_id_map& ids) {
        if (!resolve_plan_bin_ids(paths.plan_bin(), plan_json_size, ids)) {
          plan_ready();
          for (uint32_t i = 0; i < v.plan.size(); ++i)
            if (auto pos = ids.find(v.plan[i].id); pos != ids.end())
              pos->second = std::min(pos->second, i);
        }
      }, *ck);
      plan_ready();
      if (ck->tasks.size() == v.plan.size() && !rep.plan_changed) {
        v.checkpoint_seq = lines;
        v.state = std::move(*ck);
        v.trusted = {rep.valid_end, v.state.seq, lines + rep.events};
        v.deadletters = std::move(rep.deadletters);
        return v;
      }
    }
  plan_ready();
  v.deadletters = deadletter_events(paths);
  auto replay = replay_log(paths.events(), v.plan);
  if (grow_plan(v.plan, replay, paths)) {
    try {
      write_plan(paths, v.plan); // the next recovery starts from it
    } catch (const std::exception&) {
      // a cache of the log's adaptive.plan_injected events
    }
  }
  v.state = make_checkpoint(replay.tasks);
  v.state.seq = replay.last_seq;
  v.state.status = replay.status;
  v.state.summary = std::move(replay.summary);
  return v;
}

} // namespace

void hand_over_run_lock(const run_setup& setup, int pid) {
  auto lock = std::static_pointer_cast<run_lock>(setup.lock);
  if (!lock)
    throw io_error("hand_over_run_lock: the setup holds no lock");
  write_file_atomic(lock->path, lock_body(pid, true));
  lock->handed_over = true;
}

run_setup_ptr prepare_resume(const project_context& ctx, std::string_view run_id,
                             resume_mode mode) {
  require_valid_run_id(run_id);
  auto paths = make_run_paths(ctx.crew_root, run_id);
  std::error_code ec;
  if (!fs::is_directory(paths.state_dir, ec))
    throw input_error(errc::not_found,
                      fmt::format("unknown run id '{}' (no {})", run_id,
                                  paths.state_dir.string()));
  // The lock first, then the state: nobody may change the log in between.
  // A run started with `run --async` gets its lock handed over by the
  // creating process right after it spawned us: wait for that briefly.
  std::shared_ptr<void> lock;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  for (;;) {
    try {
      lock = acquire_lock(paths.lock(), run_id);
      break;
    } catch (const input_error&) {
      if (mode != resume_mode::start_queued
          || std::chrono::steady_clock::now() > deadline)
        throw;
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
  }
  auto view = load_for_resume(paths);
  auto status = view.state.status;
  if (mode == resume_mode::start_queued && status != run_status::queued)
    throw input_error(fmt::format("run '{}' is {}, not queued: nothing to start",
                                  run_id, to_string(status)));
  if (mode == resume_mode::recover && status != run_status::running)
    throw input_error(fmt::format(
      "run '{}' is not interrupted (it is {}): nothing to recover", run_id,
      to_string(status)));
  bool work_left = false;
  for (auto& t : view.state.tasks)
    work_left = work_left || t.status != task_status::completed;
  if (!work_left && status == run_status::completed)
    throw input_error(fmt::format(
      "run '{}' already completed: nothing to resume", run_id));
  kill_orphaned_workers(view.state.tasks);
  drop_stale_requests(paths);
  repair_deadletters(paths, run_id, view.deadletters);
  auto setup = std::make_shared<run_setup>();
  setup->paths = make_run_paths(ctx.crew_root, run_id);
  setup->manifest = view.manifest;
  auto& m = setup->manifest;
  m.owner_pid = ::getpid();
  m.owner_start = process_start_time(static_cast<int>(m.owner_pid));
  setup->plan = std::move(view.plan);
  setup->manifest.seq = view.state.seq;
  setup->checkpoint = std::move(view.state);
  setup->trusted_log = view.trusted;
  setup->checkpoint_seq = view.checkpoint_seq;
  setup->resume = mode == resume_mode::resume;
  setup->recover = mode == resume_mode::recover;
  if (m.runtime_mode == "sim") {
    setup->backend = backend_kind::sim;
    setup->engine.max_concurrent = 256;
  } else {
    setup->backend = backend_for(ctx.config);
    uint32_t team_max = 0, wf_max = 0;
    if (auto team = ctx.resources.find_team(m.team))
      team_max = team->max_concurrency;
    if (auto wf = ctx.resources.find_workflow(m.workflow))
      wf_max = wf->max_concurrency;
    concurrency_inputs in;
    in.workflow_name = m.workflow;
    in.workflow_max = wf_max;
    in.team_max = team_max;
    in.limit_max = ctx.config.limits.max_concurrent_workers.value_or(0);
    in.allow_unbounded = ctx.config.limits.allow_unbounded_concurrency;
    setup->engine.max_concurrent = resolve_concurrency(in).max_concurrent;
    fill_workers(*setup, ctx);
    apply_adaptive(*setup, ctx, ctx.resources.find_team(m.team));
  }
  m.runtime_mode = to_string(setup->backend);
  setup->engine.runtime = m.runtime_mode;
  apply_config(*setup, ctx.config);
  if (setup->backend == backend_kind::command)
    apply_workspace(*setup, ctx, false); // tasks check the leader themselves
  setup->lock = std::move(lock);
  return setup;
}

cancel_outcome cancel_run(const fs::path& crew_root, std::string_view run_id,
                          uint64_t wait_ms) {
  auto view = load_run(crew_root, run_id);
  auto paths = make_run_paths(crew_root, run_id);
  if (is_terminal(view.replay.status))
    return cancel_outcome::already_terminal;
  if (view.owner_alive) {
    // Addressed to the owner we saw: a later owner ignores (and drops) it.
    write_file_atomic(paths.cancel_request(),
                      fmt::format(R"({{"requestedAt":"{}","pid":{},"owner":{}}})",
                                  iso_now(), ::getpid(), view.owner_pid)
                        + "\n");
    auto deadline = std::chrono::steady_clock::now()
                    + std::chrono::milliseconds{wait_ms};
    while (std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
      std::error_code ec;
      if (fs::exists(paths.lock(), ec))
        continue; // the owner still works on it
      auto after = load_run(crew_root, run_id);
      if (!is_terminal(after.replay.status) && !after.owner_alive)
        break; // the owner died: cancel it offline below
      if (!is_terminal(after.replay.status))
        continue;
      // The owner ended: by our request, or on its own just before it.
      fs::remove(paths.cancel_request(), ec);
      return after.replay.status == run_status::cancelled
               ? cancel_outcome::requested
               : cancel_outcome::already_terminal;
    }
    std::error_code ec;
    if (fs::exists(paths.lock(), ec))
      return cancel_outcome::timed_out;
    fs::remove(paths.cancel_request(), ec);
    view = load_run(crew_root, run_id);
    if (is_terminal(view.replay.status))
      return cancel_outcome::already_terminal;
  }
  // No live owner: the run was interrupted. Cancel it in its log directly.
  auto lock = acquire_lock(paths.lock(), run_id);
  drop_stale_requests(paths);
  auto log = event_log_writer::open(paths.events());
  auto replay = replay_log(paths.events(), view.plan);
  if (is_terminal(replay.status)) // another process finished it meanwhile
    return cancel_outcome::already_terminal;
  kill_orphaned_workers(replay.tasks);
  auto seq = log.last_seq();
  std::string bytes;
  const char* reason = "Run cancelled by user request.";
  for (size_t i = 0; i < view.plan.size(); ++i) {
    auto& t = replay.tasks[i];
    if (is_terminal(t.status))
      continue;
    bytes += event_line("task.cancelled", run_id, view.plan[i].id, reason, {},
                        ++seq, static_cast<uint32_t>(i));
  }
  bytes += event_line("run.cancelled", run_id, {}, reason, {}, ++seq);
  log.append(bytes, seq);
  log.sync();
  refresh_snapshots(paths, view);
  return cancel_outcome::cancelled_offline;
}

std::vector<nlohmann::json> list_deadletters(const fs::path& crew_root,
                                             std::string_view run_id) {
  load_run(crew_root, run_id); // validates the id and the run
  auto path = make_run_paths(crew_root, run_id).deadletter();
  return read_deadletters(path, [&](size_t line) {
    throw input_error(errc::corrupt_log,
                      fmt::format("{}:{}: unparsable deadletter entry",
                                  path.string(), line));
  });
}

deadletter_outcome deadletter_task(const fs::path& crew_root,
                                   std::string_view run_id,
                                   std::string_view task_id, uint64_t wait_ms) {
  auto view = load_run(crew_root, run_id);
  auto paths = make_run_paths(crew_root, run_id);
  uint32_t index = UINT32_MAX;
  for (uint32_t i = 0; i < view.plan.size(); ++i)
    if (view.plan[i].id == task_id || view.plan[i].step_id == task_id)
      index = i;
  if (index == UINT32_MAX)
    throw input_error(errc::not_found,
                      fmt::format("run '{}' has no task '{}'", run_id, task_id));
  auto& id = view.plan[index].id;
  auto has_entry = [&] {
    auto before = 0;
    try {
      for (auto& e : list_deadletters(crew_root, run_id))
        if (e.value("taskId", "") == id && e.value("reason", "") == "manual")
          ++before;
    } catch (const input_error&) {
      return -1; // an entry being appended right now: look again
    }
    return before;
  };
  auto entries_before = has_entry();
  if (view.owner_alive) {
    // "<task id>\t<owner pid>": only that owner acts on it.
    append_file(paths.deadletter_request(),
                fmt::format("{}\t{}\n", id, view.owner_pid));
    auto deadline = std::chrono::steady_clock::now()
                    + std::chrono::milliseconds{wait_ms};
    while (std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
      if (auto n = has_entry(); n > entries_before)
        return deadletter_outcome::written;
    }
    return deadletter_outcome::timed_out;
  }
  // No live owner: this process is the log's writer for the moment.
  auto lock = acquire_lock(paths.lock(), run_id);
  drop_stale_requests(paths);
  auto log = event_log_writer::open(paths.events());
  auto replay = replay_log(paths.events(), view.plan);
  kill_orphaned_workers(replay.tasks);
  auto& t = replay.tasks[index];
  auto seq = log.last_seq();
  const char* text = "Deadlettered by hand.";
  std::string bytes;
  std::string error = t.error.empty() ? text : t.error;
  if (!is_terminal(t.status)) {
    bytes += event_line("task.failed", run_id, id, text, {}, ++seq, index);
    error = text;
  }
  auto attempts = t.attempts.size();
  std::string data = R"({"reason":"manual")";
  data += fmt::format(R"(,"attempts":{},"lastError":)", attempts);
  append_json_string(data, error);
  data += '}';
  bytes += event_line("crew.task.deadletter", run_id, id, error, data, ++seq, index);
  log.append(bytes, seq);
  log.sync();
  std::string line = R"({"taskId":)";
  append_json_string(line, id);
  line += R"(,"runId":)";
  append_json_string(line, run_id);
  line += fmt::format(R"(,"reason":"manual","attempts":{},"lastError":)", attempts);
  append_json_string(line, error);
  line += R"(,"timestamp":")";
  line += iso_now();
  line += R"(","traceId":")";
  line += correlation::for_run(run_id).trace_hex();
  line += "\"}\n";
  append_file(paths.deadletter(), line);
  refresh_snapshots(paths, view);
  return deadletter_outcome::written;
}

std::vector<recovery_plan> find_interrupted(const fs::path& crew_root,
                                            const std::vector<std::string>& run_ids) {
  std::vector<recovery_plan> out;
  auto ids = run_ids.empty() ? list_run_ids(crew_root) : run_ids;
  for (auto& id : ids) {
    run_view view;
    try {
      view = load_run(crew_root, id);
    } catch (const input_error&) {
      if (!run_ids.empty())
        throw; // a named run must exist and be readable
      continue;
    }
    bool interrupted = view.replay.status == run_status::running && !view.owner_alive;
    if (!interrupted) {
      if (!run_ids.empty())
        throw input_error(fmt::format(
          "run '{}' is not interrupted ({}{}): nothing to recover", id,
          to_string(view.replay.status),
          view.owner_alive ? fmt::format(", executing in pid {}", view.owner_pid)
                           : ""));
      continue;
    }
    recovery_plan plan;
    plan.run_id = id;
    plan.last_event_seq = view.replay.last_seq;
    for (size_t i = 0; i < view.plan.size(); ++i) {
      auto& t = view.replay.tasks[i];
      if (t.status == task_status::running && t.retry_due_ms == 0)
        plan.resumable_tasks.push_back(view.plan[i].id);
      else if (is_terminal(t.status))
        plan.preserved_tasks.push_back(view.plan[i].id);
    }
    out.push_back(std::move(plan));
  }
  return out;
}

void decline_recovery(const fs::path& crew_root, std::string_view run_id) {
  find_interrupted(crew_root, {std::string{run_id}}); // validates
  auto view = load_run(crew_root, run_id);
  auto paths = make_run_paths(crew_root, run_id);
  auto lock = acquire_lock(paths.lock(), run_id);
  drop_stale_requests(paths);
  auto log = event_log_writer::open(paths.events());
  auto replay = replay_log(paths.events(), view.plan);
  if (replay.status != run_status::running)
    throw input_error(fmt::format(
      "run '{}' is not interrupted any more (it is {}): nothing to decline",
      run_id, to_string(replay.status)));
  kill_orphaned_workers(replay.tasks);
  auto seq = log.last_seq();
  auto from = seq;
  const char* reason = "interrupted-not-resumed";
  std::string bytes;
  for (size_t i = 0; i < view.plan.size(); ++i)
    if (!is_terminal(replay.tasks[i].status))
      bytes += event_line("task.cancelled", run_id, view.plan[i].id, reason, {},
                          ++seq, static_cast<uint32_t>(i));
  bytes += event_line("crew.run.recovery_declined", run_id, {}, reason,
                      fmt::format(R"({{"recoveredFromSeq":{}}})", from), ++seq);
  bytes += event_line("run.cancelled", run_id, {}, reason, {}, ++seq);
  log.append(bytes, seq);
  log.sync();
  refresh_snapshots(paths, view);
}

run_setup_ptr prepare_loadtest(const fs::path& crew_root,
                               const loadtest_options& opts) {
  if (opts.tasks == 0)
    throw input_error("--tasks: must be at least 1");
  if (opts.concurrency == 0)
    throw input_error("--concurrency: must be at least 1");
  for (auto [name, rate] : {std::pair{"--fail-rate", opts.fail_rate},
                            std::pair{"--hang-rate", opts.hang_rate},
                            std::pair{"--crash-rate", opts.crash_rate}})
    if (!(rate >= 0 && rate <= 1))
      throw input_error(fmt::format("{}: must be between 0 and 1", name));
  auto setup = std::make_shared<run_setup>();
  auto now = std::chrono::system_clock::now();
  auto run_id = "loadtest_" + new_run_id(now).substr(5);
  setup->paths = make_run_paths(crew_root, run_id);
  auto& m = setup->manifest;
  m.run_id = run_id;
  m.team = "loadtest";
  m.workflow = fmt::format("{}-{}", to_string(opts.shape), opts.tasks);
  m.goal = "crew loadtest";
  m.created_at = m.updated_at = iso_time(now);
  m.cwd = crew_root.parent_path().string();
  fill_manifest_paths(m, setup->paths);
  setup->backend = backend_kind::sim;
  m.runtime_mode = "sim";
  m.owner_pid = ::getpid();
  m.owner_start = process_start_time(static_cast<int>(m.owner_pid));
  setup->plan = synthetic_plan(opts.shape, opts.tasks, opts.seed);
  setup->engine.max_concurrent = opts.concurrency;
  setup->engine.runtime = "sim";
  setup->engine.record_latency = true;
  setup->sim.latency_ms = opts.latency_ms;
  setup->sim.fail_rate = opts.fail_rate;
  setup->sim.hang_rate = opts.hang_rate;
  setup->sim.crash_rate = opts.crash_rate;
  setup->sim.seed = opts.seed;
  setup->sim_hang_timeout_ms = opts.hang_timeout_ms;
  if (opts.retry_attempts > 1) {
    auto& retry = setup->engine.retry;
    retry.enabled = true;
    retry.max_attempts = opts.retry_attempts;
    retry.backoff_ms = opts.backoff_ms;
    retry.max_backoff_ms = std::max<uint64_t>(opts.backoff_ms * 16, 1);
  }
  setup->snapshot_interval_ms = 0; // one snapshot, at the end
  setup->fsync = opts.fsync;
  fs::create_directories(setup->paths.state_dir);
  setup->lock = acquire_lock(setup->paths.lock(), run_id);
  write_plan(setup->paths, setup->plan);
  {
    auto log = event_log_writer::open(setup->paths.events());
    auto data = fmt::format(R"({{"team":"loadtest","workflow":"{}","taskCount":{}}})",
                            m.workflow, opts.tasks);
    log.append(event_line("run.created", run_id, {}, "Run created.", data, 1), 1);
    log.sync();
  }
  m.seq = 1;
  write_file_atomic(setup->paths.manifest(), manifest_json(m));
  return setup;
}

} // namespace crew
