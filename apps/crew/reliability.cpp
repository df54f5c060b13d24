#include "reliability.hpp"

#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "crew/crew.hpp"
#include "runtime/operations/deadletter.hpp"
#include "runtime/operations/project.hpp"
#include "runtime/operations/recover.hpp"
#include "runtime/operations/resume.hpp"
#include "runtime/operations/verify.hpp"
#include "runtime/workers/worktree.hpp"
#include "store/paths.hpp"

namespace crew::cli {

namespace {

using json = nlohmann::json;

/// `crew cleanup RUN [--force]`: the run's worktrees (workspaceMode
/// worktree). A running run is refused: its tasks use them.
int cmd_cleanup(const common_opts& o, const std::string& run_id, bool force) {
  auto root = crew::crew_root_for(o.cwd);
  auto v = crew::load_run(root, run_id);
  if (v.owner_alive)
    throw crew::input_error(fmt::format(
      "run '{}' is executing in pid {}: cancel it or wait before cleaning up "
      "its worktrees", run_id, v.owner_pid));
  auto paths = crew::make_run_paths(root, run_id);
  auto report = crew::cleanup_run_worktrees(v.manifest.cwd, root, run_id,
                                            paths.artifacts_dir, force);
  if (o.json) {
    std::cout << json{{"runId", run_id},
                      {"removed", report.removed},
                      {"preserved", report.preserved},
                      {"artifacts", report.artifacts},
                      {"errors", report.errors}}
                   .dump()
              << std::endl;
  } else {
    for (auto& x : report.removed)
      std::cout << "removed    " << x << "\n";
    for (auto& x : report.preserved)
      std::cout << "preserved  " << x << " (dirty; crew cleanup " << run_id
                << " --force removes it)\n";
    for (auto& x : report.artifacts)
      std::cout << "diff       " << x << "\n";
    for (auto& x : report.errors)
      std::cout << "error      " << x << "\n";
    if (report.removed.empty() && report.preserved.empty() && report.errors.empty())
      std::cout << "no worktrees for run " << run_id << "\n";
  }
  return report.errors.empty() ? 0 : 1;
}

/// Replays a run's log and checks its invariants; prints a report (one JSON
/// object with `json`). Returns 0 when every check holds, 1 otherwise.
int cmd_verify(const std::string& cwd, const std::string& run_id, bool json) {
  verify_report report;
  try {
    report = verify_run(crew_root_for(cwd), run_id);
  } catch (const input_error& e) {
    if (e.code() != errc::corrupt_log)
      throw; // an unknown or path-like id: bad input, exit 2
    // A log damaged in the middle is a violation to report, not bad usage.
    report.run_id = run_id;
    report.checks.push_back(verify_check{"log readable", false, {e.what()}});
  }
  if (json) {
    nlohmann::json checks = nlohmann::json::array();
    for (auto& c : report.checks)
      checks.push_back({{"check", c.name}, {"ok", c.ok}, {"problems", c.problems}});
    std::cout << nlohmann::json{{"runId", report.run_id},
                                {"ok", report.ok()},
                                {"events", report.events},
                                {"lastSeq", report.last_seq},
                                {"checks", checks}}
                   .dump()
              << std::endl;
  } else {
    std::cout << fmt::format("run {}: {} events, last seq {}\n", report.run_id,
                             report.events, report.last_seq);
    for (auto& c : report.checks) {
      std::cout << (c.ok ? "  ok    " : "  FAIL  ") << c.name << "\n";
      for (auto& p : c.problems)
        std::cout << "          - " << p << "\n";
    }
    std::cout << (report.ok() ? "verified: every invariant holds\n"
                              : "verification FAILED\n");
  }
  return report.ok() ? 0 : 1;
}

/// Lists a run's deadletter entries, or (with `task`) deadletters that task
/// by hand; `reason` must be `manual`.
int cmd_deadletter(const std::string& cwd, const std::string& run_id,
                   const std::string& task, const std::string& reason, bool json) {
  auto root = crew_root_for(cwd);
  if (!task.empty()) {
    if (reason != "manual")
      throw input_error(fmt::format(
        "--reason: only 'manual' can be given by hand (got '{}')", reason));
    auto outcome = deadletter_task(root, run_id, task);
    bool ok = outcome == deadletter_outcome::written;
    if (json)
      std::cout << nlohmann::json{{"runId", run_id}, {"taskId", task},
                                  {"reason", "manual"}, {"written", ok}}
                     .dump()
                << std::endl;
    else
      std::cout << (ok ? fmt::format("{}: task {} deadlettered (manual)\n", run_id,
                                     task)
                       : fmt::format("{}: requested; the owning process has not "
                                     "written the entry yet\n",
                                     run_id));
    return ok ? 0 : 1;
  }
  auto entries = list_deadletters(root, run_id);
  if (json) {
    std::cout << nlohmann::json(entries).dump() << std::endl;
    return 0;
  }
  if (entries.empty())
    std::cout << run_id << ": no deadletter entries\n";
  for (auto& e : entries)
    std::cout << fmt::format("{} {} {} attempts {} - {}\n",
                             e.value("timestamp", ""), e.value("taskId", ""),
                             e.value("reason", ""), e.value("attempts", 0),
                             e.value("lastError", ""));
  return 0;
}

/// `crew recover [--apply | --decline] [RUN…]`: shows the recovery plans of
/// interrupted runs, applies them (each run continues here, in turn) or
/// declines them.
int cmd_recover(const std::string& cwd, const std::vector<std::string>& runs,
                bool apply, bool decline, bool json,
                const std::vector<std::string>& overrides) {
  if (apply && decline)
    throw input_error("--apply and --decline exclude each other");
  auto ctx = load_project(cwd, overrides);
  // With named runs, --apply goes straight to the lock and one replay
  // (prepare_resume checks the run is interrupted); otherwise find them.
  std::vector<recovery_plan> plans;
  if (apply && !runs.empty()) {
    for (auto& id : runs)
      plans.push_back(recovery_plan{id, {}, {}, 0});
  } else {
    plans = find_interrupted(ctx.crew_root, runs);
  }
  nlohmann::json out = nlohmann::json::array();
  int rc = 0;
  for (auto& p : plans) {
    std::string action, status;
    if (decline) {
      decline_recovery(ctx.crew_root, p.run_id);
      action = "declined";
      status = "cancelled";
    } else if (apply) {
      auto node = node_options_for(ctx);
      auto setup = prepare_resume(ctx, p.run_id, resume_mode::recover);
      // The plan is what the run's state was when recovery began; it is
      // listed after the run (ids of a large run take a while to copy, and
      // the first dispatch should not wait for them).
      bool describe = p.resumable_tasks.empty() && p.preserved_tasks.empty();
      std::vector<uint32_t> resumable, preserved;
      if (describe) {
        for (uint32_t i = 0; i < setup->plan.size(); ++i) {
          auto& t = setup->checkpoint.tasks[i];
          if (t.status == task_status::running && !t.waiting)
            resumable.push_back(i);
          else if (is_terminal(t.status))
            preserved.push_back(i);
        }
        p.last_event_seq = setup->manifest.seq;
      }
      auto final = execute_in_foreground(node, setup);
      for (auto i : resumable)
        p.resumable_tasks.push_back(setup->plan[i].id);
      for (auto i : preserved)
        p.preserved_tasks.push_back(setup->plan[i].id);
      action = "applied";
      status = final.status;
      if (final.status != "completed")
        rc = exit_code_of(final);
    }
    nlohmann::json row{{"runId", p.run_id},
                       {"resumableTasks", p.resumable_tasks},
                       {"preservedTasks", p.preserved_tasks},
                       {"lastEventSeq", p.last_event_seq}};
    if (!action.empty()) {
      row["action"] = action;
      row["status"] = status;
    }
    if (!json)
      std::cout << fmt::format("{}: {} interrupted attempt(s), {} finished task(s) "
                               "kept, last seq {}{}\n",
                               p.run_id, p.resumable_tasks.size(),
                               p.preserved_tasks.size(), p.last_event_seq,
                               action.empty()
                                 ? std::string{}
                                 : fmt::format(" -> {} ({})", action, status));
    out.push_back(std::move(row));
    if (stop_signal() != 0)
      break; // cancelled by a signal: the runs after it stay interrupted
  }
  if (json)
    std::cout << out.dump() << std::endl;
  else if (plans.empty())
    std::cout << "no interrupted runs\n";
  return rc;
}

struct cleanup_opts : run_opts {
  bool force = false;
};

struct recover_opts : common_opts {
  std::vector<std::string> runs;
  bool apply = false, decline = false;
  std::vector<std::string> sets;
};

struct deadletter_opts : run_opts {
  std::string task, reason = "manual";
};

} // namespace

void check_interrupted(const crew::project_context& ctx) {
  std::vector<crew::recovery_plan> plans;
  try {
    plans = crew::find_interrupted(ctx.crew_root, {});
  } catch (const std::exception&) {
    return; // a damaged run is reported by the commands that read it
  }
  for (auto& p : plans) {
    if (ctx.config.reliability.auto_recover) {
      auto log = (crew::make_run_paths(ctx.crew_root, p.run_id).state_dir
                  / "background.log")
                   .string();
      auto pid = spawn_detached({"crew", "recover", "--apply", p.run_id, "--cwd",
                                 ctx.project_root.string()},
                                log);
      std::cerr << "crew: recovering interrupted run " << p.run_id << " ("
                << p.resumable_tasks.size()
                << " interrupted attempt(s)) in the background, pid " << pid
                << "\n";
    } else {
      std::cerr << "crew: run " << p.run_id
                << " was interrupted; `crew recover --apply " << p.run_id
                << "` continues it, `--decline` cancels it\n";
    }
  }
}

void add_cleanup_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<cleanup_opts>();
  auto cleanup = app.add_subcommand(
    "cleanup", "remove a run's git worktrees and branches (dirty ones are kept, "
               "their diff saved, unless --force)");
  add_run_opts(cleanup, *o);
  cleanup->add_flag("--force", o->force,
                    "also remove dirty worktrees (after saving their diff)");
  commands.add(cleanup, [o] { return cmd_cleanup(*o, o->run_id, o->force); });
}

void add_verify_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<run_opts>();
  auto verify = app.add_subcommand("verify", "replay a run's log and check its invariants (exit 1 on a violation)");
  add_run_opts(verify, *o);
  commands.add(verify, [o] { return cmd_verify(o->cwd, o->run_id, o->json); });
}

void add_recover_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<recover_opts>();
  auto recover = app.add_subcommand("recover", "show, apply or decline recovery plans of interrupted runs");
  add_common(recover, *o);
  recover->add_option("runs", o->runs, "run ids (default: every interrupted run)");
  recover->add_flag("--apply", o->apply, "requeue the interrupted attempts and continue each run here");
  recover->add_flag("--decline", o->decline, "cancel each run with reason interrupted-not-resumed");
  add_overrides(recover, o->sets);
  commands.add(recover, [o] {
    return cmd_recover(o->cwd, o->runs, o->apply, o->decline, o->json, o->sets);
  });
}

void add_deadletter_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<deadletter_opts>();
  auto deadletter = app.add_subcommand("deadletter", "list a run's deadletter entries, or deadletter a task by hand");
  add_run_opts(deadletter, *o);
  deadletter->add_option("--task", o->task, "deadletter this task (id or step id) by hand");
  deadletter->add_option("--reason", o->reason, "with --task: manual")->capture_default_str();
  commands.add(deadletter, [o] {
    return cmd_deadletter(o->cwd, o->run_id, o->task, o->reason, o->json);
  });
}

} // namespace crew::cli
