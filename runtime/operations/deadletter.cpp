#include "runtime/operations/deadletter.hpp"

#include <chrono>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "messages/errors.hpp"
#include "runtime/operations/detail/orphans.hpp"
#include "runtime/operations/detail/run_files.hpp"
#include "runtime/operations/detail/run_lock.hpp"
#include "runtime/operations/inspect.hpp"
#include "store/atomic_file.hpp"
#include "store/clock.hpp"
#include "store/correlation.hpp"
#include "store/deadletter.hpp"
#include "store/event_log.hpp"
#include "store/json_writer.hpp"
#include "store/paths.hpp"
#include "store/replay.hpp"

namespace fs = std::filesystem;

namespace crew {

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
  auto lock = detail::acquire_lock(paths.lock(), run_id);
  detail::drop_stale_requests(paths);
  auto log = event_log_writer::open(paths.events());
  auto replay = replay_log(paths.events(), view.plan);
  detail::kill_orphaned_workers(replay.tasks);
  auto& t = replay.tasks[index];
  auto seq = log.last_seq();
  const char* text = "Deadlettered by hand.";
  std::string bytes;
  std::string error = t.error.empty() ? text : t.error;
  if (!is_terminal(t.status)) {
    bytes += detail::event_line("task.failed", run_id, id, text, {}, ++seq, index);
    error = text;
  }
  auto attempts = t.attempts.size();
  std::string data = R"({"reason":"manual")";
  data += fmt::format(R"(,"attempts":{},"lastError":)", attempts);
  append_json_string(data, error);
  data += '}';
  bytes += detail::event_line("crew.task.deadletter", run_id, id, error, data,
                              ++seq, index);
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
  detail::refresh_snapshots(paths, view);
  return deadletter_outcome::written;
}

} // namespace crew
