#include "runtime/operations/recover.hpp"

#include <fmt/format.h>

#include "messages/errors.hpp"
#include "runtime/operations/detail/orphans.hpp"
#include "runtime/operations/detail/run_files.hpp"
#include "runtime/operations/detail/run_lock.hpp"
#include "runtime/operations/inspect.hpp"
#include "store/event_log.hpp"
#include "store/paths.hpp"
#include "store/replay.hpp"

namespace fs = std::filesystem;

namespace crew {

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
  auto lock = detail::acquire_lock(paths.lock(), run_id);
  detail::drop_stale_requests(paths);
  auto log = event_log_writer::open(paths.events());
  auto replay = replay_log(paths.events(), view.plan);
  if (replay.status != run_status::running)
    throw input_error(fmt::format(
      "run '{}' is not interrupted any more (it is {}): nothing to decline",
      run_id, to_string(replay.status)));
  auto from = log.last_seq();
  const char* reason = "interrupted-not-resumed";
  auto seq = detail::cancel_orphaned_workers(log, run_id, reason, replay.tasks);
  std::string bytes;
  for (size_t i = 0; i < view.plan.size(); ++i)
    if (!is_terminal(replay.tasks[i].status))
      bytes += detail::event_line("task.cancelled", run_id, view.plan[i].id,
                                  reason, {}, ++seq, static_cast<uint32_t>(i));
  bytes += detail::event_line("crew.run.recovery_declined", run_id, {}, reason,
                              fmt::format(R"({{"recoveredFromSeq":{}}})", from),
                              ++seq);
  bytes += detail::event_line("run.cancelled", run_id, {}, reason, {}, ++seq);
  log.append(bytes, seq);
  log.sync();
  detail::refresh_snapshots(paths, view);
}

} // namespace crew
