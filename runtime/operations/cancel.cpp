#include "runtime/operations/cancel.hpp"

#include <chrono>
#include <string>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include "runtime/operations/detail/orphans.hpp"
#include "runtime/operations/detail/run_files.hpp"
#include "runtime/operations/detail/run_lock.hpp"
#include "runtime/operations/inspect.hpp"
#include "store/atomic_file.hpp"
#include "store/clock.hpp"
#include "store/event_log.hpp"
#include "store/paths.hpp"
#include "store/replay.hpp"

namespace fs = std::filesystem;

namespace crew {

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
  auto lock = detail::acquire_lock(paths.lock(), run_id);
  detail::drop_stale_requests(paths);
  auto log = event_log_writer::open(paths.events());
  auto replay = replay_log(paths.events(), view.plan);
  if (is_terminal(replay.status)) // another process finished it meanwhile
    return cancel_outcome::already_terminal;
  std::string bytes;
  const char* reason = "Run cancelled by user request.";
  auto seq = detail::cancel_orphaned_workers(log, run_id, reason, replay.tasks);
  for (size_t i = 0; i < view.plan.size(); ++i) {
    auto& t = replay.tasks[i];
    if (is_terminal(t.status))
      continue;
    bytes += detail::event_line("task.cancelled", run_id, view.plan[i].id,
                                reason, {}, ++seq, static_cast<uint32_t>(i));
  }
  bytes += detail::event_line("run.cancelled", run_id, {}, reason, {}, ++seq);
  log.append(bytes, seq);
  log.sync();
  detail::refresh_snapshots(paths, view);
  return cancel_outcome::cancelled_offline;
}

} // namespace crew
