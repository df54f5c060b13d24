#include "runs.hpp"

#include <chrono>
#include <iostream>
#include <memory>
#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "crew/crew.hpp"
#include "reliability.hpp"
#include "messages/errors.hpp"

namespace crew::cli {

namespace {

using json = nlohmann::json;

// -- executing a run in the foreground ------------------------------------------

std::string progress_line(const crew::run_progress& p) {
  return fmt::format("{}: done {}/{}  running {}  queued {}  failed {}{}{}",
                     p.run_id, p.completed + p.failed + p.skipped + p.cancelled,
                     p.total, p.running, p.queued, p.failed,
                     p.skipped ? fmt::format("  skipped {}", p.skipped) : "",
                     p.cancelled ? fmt::format("  cancelled {}", p.cancelled)
                                 : "");
}

/// CPU time (user + system) of this process and its threads, not of its
/// workers: the orchestrator's own cost of a run.
uint64_t own_cpu_ms() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& t) {
    return static_cast<uint64_t>(t.tv_sec) * 1000 + static_cast<uint64_t>(t.tv_usec) / 1000;
  };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

/// Executes a prepared run in the foreground with live progress.
int execute(const crew::project_context& ctx, const crew::node_options& node,
            crew::run_setup_ptr setup, const common_opts& o) {
  auto run_id = setup->manifest.run_id;
  auto paths = setup->paths;
  if (!o.json)
    std::cout << "run " << run_id << " (" << setup->plan.size() << " tasks, "
              << crew::to_string(setup->backend) << ")" << std::endl;
  bool tty = ::isatty(STDERR_FILENO) != 0;
  auto last_print = std::chrono::steady_clock::now();
  std::string last_line;
  // Output to a closed pipe or terminal fails quietly (SIGPIPE is ignored,
  // the streams do not throw): the run goes on and its end is in its log.
  auto final = execute_in_foreground(
    node, std::move(setup), // released with the run: that frees the run lock
    [&](const crew::run_progress& p) {
      auto line = progress_line(p);
      if (tty) {
        std::cerr << "\r\033[K" << line << std::flush;
      } else {
        auto now = std::chrono::steady_clock::now();
        if (line != last_line && now - last_print >= std::chrono::seconds{1}) {
          std::cerr << line << "\n";
          last_print = now;
        }
      }
      last_line = line;
    });
  if (tty)
    std::cerr << "\r\033[K";
  if (o.json) {
    json out{{"runId", run_id}, {"status", final.status},
             {"tasks", counts_json(final)}, {"cpuMs", own_cpu_ms()}};
    std::cout << out.dump() << std::endl;
  } else {
    std::cout << progress_line(final) << "\n"
              << "status:    " << final.status << "\n"
              << "events:    " << paths.events().string() << "\n"
              << "state:     " << paths.state_dir.string() << "\n"
              << "artifacts: " << paths.artifacts_dir.string() << "\n"
              << "results:   " << (paths.artifacts_dir / "results").string()
              << "\n"
              << "metrics:   "
              << (node.metrics.metrics_dir.empty()
                    ? std::string{"(telemetry disabled)"}
                    : node.metrics.metrics_dir + " (JSONL)")
              << "; crew metrics --cwd " << ctx.project_root.string() << "\n";
  }
  return exit_code_of(final);
}

// -- crew run -------------------------------------------------------------------

/// Starts `crew resume RUN --start-queued` in the background and hands it
/// the run lock.
int spawn_background(const crew::project_context& ctx,
                     const crew::run_setup& setup,
                     const std::vector<std::string>& overrides) {
  std::vector<std::string> args{"crew", "resume", setup.manifest.run_id,
                                "--start-queued", "--cwd",
                                ctx.project_root.string()};
  for (auto& kv : overrides) {
    args.push_back("--set");
    args.push_back(kv);
  }
  auto pid = spawn_detached(std::move(args),
                            (setup.paths.state_dir / "background.log").string());
  crew::hand_over_run_lock(setup, pid);
  return pid;
}

/// The options of `crew plan`; `crew run` takes them too.
struct plan_opts : common_opts {
  std::string team = "default", workflow;
  std::vector<std::string> sets;
};

struct run_cmd_opts : plan_opts {
  std::string goal;
  bool async = false;
};

void add_team_and_workflow(CLI::App* cmd, plan_opts& o) {
  cmd->add_option("--team", o.team, "team name")->capture_default_str();
  cmd->add_option("--workflow", o.workflow, "workflow (default: the team's)");
}

int cmd_run(const run_cmd_opts& o) {
  auto ctx = crew::load_project(o.cwd, o.sets);
  auto node = crew::node_options_for(ctx); // validated before any write
  auto pr = crew::plan_run(ctx, o.team, o.workflow);
  check_interrupted(ctx);
  for (auto& w : pr.warnings)
    std::cerr << "warning: " << w.to_string() << "\n";
  auto setup = crew::prepare_run(ctx, pr, o.goal);
  if (o.async || ctx.config.async_by_default) {
    auto id = setup->manifest.run_id;
    auto pid = spawn_background(ctx, *setup, o.sets);
    setup.reset(); // the lock now belongs to the background runner
    if (o.json)
      std::cout << json{{"runId", id}, {"status", "queued"}, {"async", true},
                        {"pid", pid}}
                     .dump()
                << std::endl;
    else
      std::cout << "run " << id << " started in the background (pid " << pid
                << "); follow it with: crew events " << id << " --follow --cwd "
                << ctx.project_root.string() << "\n";
    return 0;
  }
  return execute(ctx, node, std::move(setup), o);
}

// -- crew plan ------------------------------------------------------------------

int cmd_plan(const plan_opts& o) {
  auto ctx = crew::load_project(o.cwd, o.sets);
  auto pr = crew::plan_run(ctx, o.team, o.workflow);
  json tasks = json::array();
  for (auto& t : pr.plan)
    tasks.push_back({{"id", t.id}, {"stepId", t.step_id}, {"role", t.role},
                     {"agent", t.agent}, {"dependsOn", t.depends_on}});
  if (o.json) {
    std::cout << json{{"team", pr.team.name}, {"workflow", pr.workflow.name},
                      {"maxConcurrent", pr.concurrency.max_concurrent},
                      {"concurrencyReason", pr.concurrency.reason},
                      {"tasks", tasks}}
                   .dump(2)
              << std::endl;
    return 0;
  }
  std::cout << "team " << pr.team.name << ", workflow " << pr.workflow.name
            << ", concurrency " << pr.concurrency.max_concurrent << " ("
            << pr.concurrency.reason << ")\n";
  for (auto& t : pr.plan) {
    std::string deps;
    for (auto& d : t.depends_on)
      deps += (deps.empty() ? " <- " : ", ") + d;
    std::cout << "  " << t.id << " [" << t.role << " -> " << t.agent << "]" << deps
              << "\n";
  }
  for (auto& w : pr.warnings)
    std::cerr << "warning: " << w.to_string() << "\n";
  return 0;
}

// -- crew cancel ----------------------------------------------------------------

int cmd_cancel(const run_opts& o) {
  const auto& run_id = o.run_id;
  auto root = crew::crew_root_for(o.cwd);
  auto outcome = crew::cancel_run(root, run_id);
  auto v = crew::load_run(root, run_id);
  const char* what = "";
  switch (outcome) {
    case crew::cancel_outcome::requested:
      what = "cancelled (workers stopped by the owning process)";
      break;
    case crew::cancel_outcome::cancelled_offline:
      what = "cancelled (no live owner; cancelled in its log)";
      break;
    case crew::cancel_outcome::already_terminal:
      what = "already finished; nothing to cancel";
      break;
    case crew::cancel_outcome::timed_out:
      what = "cancel requested; the owning process has not confirmed yet";
      break;
  }
  if (o.json)
    std::cout << json{{"runId", run_id},
                      {"status", crew::to_string(v.replay.status)},
                      {"outcome", what}}
                   .dump()
              << std::endl;
  else
    std::cout << run_id << ": " << crew::to_string(v.replay.status) << " - "
              << what << "\n";
  return outcome == crew::cancel_outcome::timed_out ? 1 : 0;
}

// -- crew resume ----------------------------------------------------------------

struct resume_opts : run_opts {
  bool start_queued = false;
  std::vector<std::string> sets;
};

int cmd_resume(const resume_opts& o) {
  auto ctx = crew::load_project(o.cwd, o.sets);
  auto node = crew::node_options_for(ctx);
  return execute(ctx, node,
                 crew::prepare_resume(ctx, o.run_id,
                                      o.start_queued
                                        ? crew::resume_mode::start_queued
                                        : crew::resume_mode::resume),
                 o);
}

} // namespace

void add_run_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<run_cmd_opts>();
  auto run = app.add_subcommand("run", "create and execute a run (exit 0 iff it completed)");
  add_common(run, *o);
  add_team_and_workflow(run, *o);
  run->add_option("--goal", o->goal, "the goal, substituted for {goal}")->required();
  run->add_flag("--async", o->async, "run in a background process; print the run id");
  add_overrides(run, o->sets);
  commands.add(run, [o] { return cmd_run(*o); });
}

void add_plan_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<plan_opts>();
  auto plan = app.add_subcommand("plan", "validate and show the task graph without running");
  add_common(plan, *o);
  add_team_and_workflow(plan, *o);
  add_overrides(plan, o->sets);
  commands.add(plan, [o] { return cmd_plan(*o); });
}

void add_cancel_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<run_opts>();
  auto cancel = app.add_subcommand("cancel", "stop a run and kill its workers");
  add_run_opts(cancel, *o);
  commands.add(cancel, [o] { return cmd_cancel(*o); });
}

void add_resume_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<resume_opts>();
  auto resume = app.add_subcommand("resume", "requeue unfinished tasks and run again");
  add_run_opts(resume, *o);
  resume->add_flag("--start-queued", o->start_queued,
                   "only start a created, never started run (used by run --async)")
    ->group("");
  add_overrides(resume, o->sets);
  commands.add(resume, [o] { return cmd_resume(*o); });
}

} // namespace crew::cli
