#pragma once

// Internal to runtime/operations/: what a dead owner of a run leaves behind
// for the process that takes the run over: its workers and the requests
// addressed to it.

#include <csignal>

#include "runtime/workers/process.hpp"
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

/// Requests left for a previous owner (it ended or died before reading
/// them) must not act on the next one: once the lock is ours, drop those not
/// addressed to this process (a run handed over to us may already have one).
void drop_stale_requests(const run_paths& paths);

} // namespace crew::detail
