#include "reliability.hpp"

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "crew/crew.hpp"
#include "runtime/operations/deadletter.hpp"
#include "runtime/operations/project.hpp"
#include "runtime/operations/recover.hpp"
#include "runtime/operations/resume.hpp"
#include "runtime/operations/verify.hpp"

namespace crew::cli {

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
      run_progress final;
      {
        crew::runtime rt{node};
        final = rt.execute(setup);
      }
      for (auto i : resumable)
        p.resumable_tasks.push_back(setup->plan[i].id);
      for (auto i : preserved)
        p.preserved_tasks.push_back(setup->plan[i].id);
      action = "applied";
      status = final.status;
      if (final.status != "completed")
        rc = 1;
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
  }
  if (json)
    std::cout << out.dump() << std::endl;
  else if (plans.empty())
    std::cout << "no interrupted runs\n";
  return rc;
}

} // namespace crew::cli
