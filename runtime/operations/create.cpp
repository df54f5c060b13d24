#include "runtime/operations/create.hpp"

#include <chrono>
#include <unistd.h>

#include <fmt/format.h>

#include "messages/errors.hpp"
#include "runtime/operations/detail/project_setup.hpp"
#include "runtime/operations/detail/run_files.hpp"
#include "runtime/operations/detail/run_lock.hpp"
#include "runtime/scheduling/planning.hpp"
#include "runtime/scheduling/research_expansion.hpp"
#include "runtime/workers/process.hpp"
#include "store/atomic_file.hpp"
#include "store/checkpoint.hpp"
#include "store/clock.hpp"
#include "store/json_writer.hpp"
#include "store/paths.hpp"
#include "store/utf8.hpp"

namespace fs = std::filesystem;

namespace crew {

namespace {

/// Throws input_error(not_found) for the unknown `kind` ("team") `name`,
/// with the names in `known` (a name -> definition map).
template <class Map>
[[noreturn]] void throw_unknown(std::string_view kind, std::string_view name,
                                const Map& known) {
  std::string names;
  for (auto& [n, def] : known)
    names += (names.empty() ? "" : ", ") + n;
  throw input_error(errc::not_found,
                    fmt::format("unknown {} '{}' (known: {})", kind, name, names));
}

} // namespace

planned_run plan_run(const project_context& ctx, std::string_view team_name,
                     std::string_view workflow_name) {
  planned_run pr;
  auto team = ctx.resources.find_team(team_name);
  if (team == nullptr)
    throw_unknown("team", team_name, ctx.resources.teams);
  pr.team = *team;
  std::string wf_name{workflow_name};
  if (wf_name.empty())
    wf_name = team->default_workflow.empty() ? "default" : team->default_workflow;
  auto workflow = ctx.resources.find_workflow(wf_name);
  if (workflow == nullptr)
    throw_unknown("workflow", wf_name, ctx.resources.workflows);
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
  detail::fill_manifest_paths(m, setup->paths);
  setup->backend = detail::backend_for(ctx.config);
  m.runtime_mode = to_string(setup->backend);
  m.owner_pid = ::getpid();
  m.owner_start = process_start_time(static_cast<int>(m.owner_pid));
  m.summary = "Run created.";
  setup->plan = pr.plan;
  setup->engine.max_concurrent = pr.concurrency.max_concurrent;
  setup->engine.runtime = m.runtime_mode;
  detail::apply_config(*setup, ctx.config);
  detail::fill_workers(*setup, ctx);
  detail::apply_adaptive(*setup, ctx, &pr.team);
  detail::apply_workspace(*setup, ctx, setup->backend == backend_kind::command);
  // Everything is validated: from here on the run exists on disk.
  fs::create_directories(setup->paths.state_dir);
  fs::create_directories(setup->paths.artifacts_dir);
  setup->lock = detail::acquire_lock(setup->paths.lock(), run_id);
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
    log.append(detail::event_line("run.created", run_id, {}, "Run created.",
                                  data, 1),
               1);
    log.sync();
  }
  m.seq = 1;
  detail::write_snapshots(setup->paths, m, setup->plan,
                          std::vector<task_state>(setup->plan.size()));
  return setup;
}

} // namespace crew
