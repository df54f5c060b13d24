#include "runtime/operations/verify.hpp"

#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "runtime/operations/inspect.hpp"
#include "store/atomic_file.hpp"
#include "store/deadletter.hpp"
#include "store/paths.hpp"
#include "store/replay.hpp"
#include "store/snapshot.hpp"

namespace fs = std::filesystem;

namespace crew {

namespace {

uint64_t uint_field(std::string_view data, std::string_view key) {
  auto pattern = fmt::format("\"{}\":", key);
  auto pos = data.find(pattern);
  if (pos == std::string_view::npos)
    return 0;
  uint64_t out = 0;
  for (auto i = pos + pattern.size(); i < data.size() && data[i] >= '0'
                                      && data[i] <= '9';
       ++i)
    out = out * 10 + static_cast<uint64_t>(data[i] - '0');
  return out;
}

std::string string_field(std::string_view data, std::string_view key) {
  auto pattern = fmt::format("\"{}\":\"", key);
  auto pos = data.find(pattern);
  if (pos == std::string_view::npos)
    return {};
  auto first = pos + pattern.size();
  auto last = data.find('"', first);
  return last == std::string_view::npos ? std::string{}
                                        : std::string{data.substr(first, last - first)};
}

verify_check& add(verify_report& r, std::string name) {
  r.checks.push_back(verify_check{std::move(name), true, {}});
  return r.checks.back();
}

void problem(verify_check& c, std::string what) {
  c.ok = false;
  if (c.problems.size() < 50)
    c.problems.push_back(std::move(what));
  else if (c.problems.size() == 50)
    c.problems.push_back("... (more problems not shown)");
}

} // namespace

verify_report verify_run(const fs::path& crew_root, std::string_view run_id) {
  auto view = load_run(crew_root, run_id);
  auto paths = make_run_paths(crew_root, run_id);
  auto& plan = view.plan;
  auto& rs = view.replay;
  verify_report r;
  r.run_id = std::string{run_id};
  r.events = rs.events;
  r.last_seq = rs.last_seq;

  auto& seq = add(r, "seq contiguous from 1");
  if (!rs.seq_contiguous)
    problem(seq, fmt::format("{}: first missing seq {}", paths.events().string(),
                             rs.first_gap_seq));

  auto& terminal = add(r, "one terminal state and one terminal event per task");
  for (auto& v : rs.violations)
    problem(terminal, v);
  if (is_terminal(rs.status))
    for (size_t i = 0; i < plan.size(); ++i)
      if (!is_terminal(rs.tasks[i].status))
        problem(terminal, fmt::format("run is {} but task '{}' is {}",
                                      to_string(rs.status), plan[i].id,
                                      to_string(rs.tasks[i].status)));

  // Attempts: task.started data.attempt counts 1, 2, ... per task; every
  // attempt but a running one is closed by a terminal or retry event.
  auto& attempts = add(r, "attempts consistent with task.started and retry events");
  std::unordered_map<std::string, uint32_t> started, retries;
  struct dl_event {
    std::string task, reason;
    uint64_t attempts;
    size_t line;
  };
  std::vector<dl_event> dl_events;
  // Seq of each task's task.completed since its last requeue.
  std::unordered_map<std::string, uint64_t> completed_seq;
  for_each_event(paths.events(), [&](const event_view& ev) {
    std::string task{ev.task_id};
    if (ev.type == "task.completed")
      completed_seq[task] = ev.seq;
    else if (ev.type == "task.requeued")
      completed_seq.erase(task);
    if (ev.type == "task.started") {
      auto n = uint_field(ev.data_raw, "attempt");
      auto expected = ++started[task];
      if (n != expected)
        problem(attempts, fmt::format("{}:{}: task '{}' starts attempt {} after {} "
                                      "started attempts",
                                      paths.events().string(), ev.line, task, n,
                                      expected - 1));
    } else if (ev.type == "crew.task.retry_attempt") {
      ++retries[task];
      auto n = uint_field(ev.data_raw, "attempt");
      if (n != started[task])
        problem(attempts, fmt::format("{}:{}: task '{}' retries attempt {} but "
                                      "{} were started",
                                      paths.events().string(), ev.line, task, n,
                                      started[task]));
    } else if (ev.type == "crew.task.deadletter") {
      dl_events.push_back({task, string_field(ev.data_raw, "reason"),
                           uint_field(ev.data_raw, "attempts"), ev.line});
    }
  });
  for (size_t i = 0; i < plan.size(); ++i) {
    auto& t = rs.tasks[i];
    auto n = started[plan[i].id];
    if (t.attempts.size() != n)
      problem(attempts, fmt::format("task '{}': {} attempts recorded but {} "
                                    "task.started events",
                                    plan[i].id, t.attempts.size(), n));
    for (size_t a = 0; a + 1 < t.attempts.size(); ++a)
      if (t.attempts[a].ended_at.empty())
        problem(attempts, fmt::format("task '{}': attempt {} never ended but "
                                      "attempt {} started",
                                      plan[i].id, a + 1, a + 2));
  }

  // A run ends completed only when every task did; a stop (cancel, expiry)
  // recorded since the run last (re)started leaves it completed only if
  // every task had completed before the stop was asked for.
  auto& final_status = add(r, "completed only when every task completed, "
                              "before any cancel or expiry");
  if (rs.status == run_status::completed)
    for (size_t i = 0; i < plan.size(); ++i) {
      auto& id = plan[i].id;
      if (rs.tasks[i].status != task_status::completed) {
        problem(final_status, fmt::format("run is completed but task '{}' is {}",
                                          id, to_string(rs.tasks[i].status)));
      } else if (rs.stop.requested() && completed_seq[id] > rs.stop.seq) {
        problem(final_status,
                fmt::format("run is completed but task '{}' completed at seq {}, "
                            "after the {} at seq {}",
                            id, completed_seq[id], stop_event_type(rs.stop.kind),
                            rs.stop.seq));
      }
    }

  // Deadletter file <-> crew.task.deadletter events, one to one.
  auto& dl = add(r, "deadletter.jsonl consistent with the log");
  auto entries = read_deadletters(paths.deadletter(), [&](size_t line) {
    problem(dl, fmt::format("{}:{}: unparsable entry", paths.deadletter().string(),
                            line));
  });
  std::error_code ec;
  std::vector<bool> matched(entries.size(), false);
  for (auto& ev : dl_events) {
    bool found = false;
    for (size_t i = 0; i < entries.size() && !found; ++i) {
      auto& e = entries[i];
      if (!matched[i] && e.value("taskId", "") == ev.task
          && e.value("reason", "") == ev.reason
          && e.value("attempts", uint64_t{0}) == ev.attempts)
        matched[i] = found = true;
    }
    if (!found)
      problem(dl, fmt::format("{}:{}: deadletter event of task '{}' ({}) has no "
                              "entry in {}",
                              paths.events().string(), ev.line, ev.task, ev.reason,
                              paths.deadletter().string()));
  }
  for (size_t i = 0; i < entries.size(); ++i)
    if (!matched[i])
      problem(dl, fmt::format("{}: entry {} (task '{}') has no deadletter event in "
                              "the log",
                              paths.deadletter().string(), i + 1,
                              entries[i].value("taskId", "?")));

  // Snapshot == replay at the seq it claims.
  auto& snap = add(r, "snapshot equal to the replay");
  auto claimed = view.manifest.seq;
  if (claimed > rs.last_seq) {
    problem(snap, fmt::format("{} claims seq {} but the log ends at {}",
                              paths.manifest().string(), claimed, rs.last_seq));
  } else if (claimed == rs.last_seq && fs::exists(paths.tasks(), ec)) {
    auto states = parse_tasks(read_file(paths.tasks()), plan, paths.tasks());
    for (size_t i = 0; i < plan.size(); ++i) {
      auto& a = states[i];
      auto& b = rs.tasks[i];
      if (a.status != b.status || a.error != b.error
          || a.started_at != b.started_at || a.finished_at != b.finished_at)
        problem(snap, fmt::format("task '{}': snapshot says {} ({}), the log says "
                                  "{} ({})",
                                  plan[i].id, to_string(a.status), a.error,
                                  to_string(b.status), b.error));
    }
  }
  return r;
}

} // namespace crew
