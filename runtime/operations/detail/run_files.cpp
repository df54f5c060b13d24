#include "runtime/operations/detail/run_files.hpp"

#include <chrono>

#include "messages/errors.hpp"
#include "store/atomic_file.hpp"
#include "store/clock.hpp"
#include "store/correlation.hpp"
#include "store/event_log.hpp"
#include "store/snapshot.hpp"

namespace crew::detail {

std::string event_line(std::string_view type, std::string_view run_id,
                       std::string_view task_id, std::string_view message,
                       std::string_view data, uint64_t seq,
                       uint32_t task_index) {
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

} // namespace crew::detail
