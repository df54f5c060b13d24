#pragma once

// Internal to runtime/operations/: what a dead owner of a run leaves behind
// for the process that takes the run over: its workers and the requests
// addressed to it.

#include <csignal>
#include <cstdint>
#include <string_view>

#include "runtime/operations/detail/run_files.hpp"
#include "runtime/workers/process.hpp"
#include "store/event_log.hpp"
#include "store/model.hpp"
#include "store/paths.hpp"

namespace crew::detail {

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

/// An offline cancel of an interrupted run: records its intent durably
/// (`crew.run.cancel_requested`), then kills the orphaned workers, so a
/// crash in between leaves a log that recovery finishes the cancel from.
/// Returns the intent's seq.
template <class Tasks>
uint64_t cancel_orphaned_workers(event_log_writer& log, std::string_view run_id,
                                 std::string_view reason, const Tasks& tasks) {
  auto seq = log.last_seq() + 1;
  log.append(event_line(stop_event_type(stop_kind::cancel), run_id, {}, reason,
                        {}, seq),
             seq);
  log.sync();
  kill_orphaned_workers(tasks);
  return seq;
}

/// Requests left for a previous owner (it ended or died before reading
/// them) must not act on the next one: once the lock is ours, drop those not
/// addressed to this process (a run handed over to us may already have one).
void drop_stale_requests(const run_paths& paths);

} // namespace crew::detail
