#include "runtime/operations/resume.hpp"

#include <chrono>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "runtime/operations/detail/orphans.hpp"
#include "runtime/operations/detail/project_setup.hpp"
#include "runtime/operations/detail/run_files.hpp"
#include "runtime/operations/detail/run_lock.hpp"
#include "runtime/scheduling/concurrency.hpp"
#include "runtime/workers/process.hpp"
#include "store/atomic_file.hpp"
#include "store/checkpoint.hpp"
#include "store/correlation.hpp"
#include "store/deadletter.hpp"
#include "store/paths.hpp"
#include "store/replay.hpp"
#include "store/snapshot.hpp"

namespace fs = std::filesystem;

namespace crew {

namespace {

/// Appends to deadletter.jsonl the entries of `crew.task.deadletter` events
/// that a crash kept out of the file (the run actor writes the file after
/// the events are durable, without an fsync of its own).
/// `events` are the log's `crew.task.deadletter` events (all of them, or
/// those after a checkpoint, whose earlier entries are known to be on disk).
void repair_deadletters(const run_paths& paths, std::string_view run_id,
                        const std::vector<tail_report::deadletter_event>& events) {
  if (events.empty())
    return;
  std::map<std::string, int> in_file; // "<task>|<reason>|<attempts>" -> count
  // A torn last entry is skipped: rewritten below since its event is durable.
  for (auto& j : read_deadletters(paths.deadletter(), [](size_t) {}))
    ++in_file[fmt::format("{}|{}|{}", j.value("taskId", ""), j.value("reason", ""),
                          j.value("attempts", 0))];
  std::string missing;
  auto trace = correlation::for_run(run_id).trace_hex();
  for (auto& ev : events) {
    auto data = nlohmann::json::parse(ev.data, nullptr, false);
    if (data.is_discarded())
      continue;
    auto key = fmt::format("{}|{}|{}", ev.task_id, data.value("reason", ""),
                           data.value("attempts", 0));
    if (in_file[key]-- > 0)
      continue;
    nlohmann::json line{{"taskId", ev.task_id},
                        {"runId", run_id},
                        {"reason", data.value("reason", "")},
                        {"attempts", data.value("attempts", 0)},
                        {"lastError", data.value("lastError", "")},
                        {"timestamp", ev.time},
                        {"traceId", trace}};
    missing += line.dump() + "\n";
  }
  if (!missing.empty())
    append_file(paths.deadletter(), missing);
}

/// The `crew.task.deadletter` events of the whole log.
std::vector<tail_report::deadletter_event> deadletter_events(const run_paths& paths) {
  std::vector<tail_report::deadletter_event> out;
  for_each_event(paths.events(), [&](const event_view& ev) {
    if (ev.type == "crew.task.deadletter")
      out.push_back({std::string{ev.task_id}, std::string{ev.time},
                     std::string{ev.data_raw}});
  });
  return out;
}

/// A run's state at the end of its log, for resume and recovery.
struct resume_view {
  run_manifest manifest;
  std::vector<planned_task> plan;
  run_checkpoint state;      ///< after the last event
  log_position trusted;      ///< the prefix of the log known to be valid
  uint64_t checkpoint_seq = 0; ///< checkpoint.bin used, 0: full replay
  /// The log's deadletter events not known to be in deadletter.jsonl.
  std::vector<tail_report::deadletter_event> deadletters;
};

/// Loads a run for resume: checkpoint.bin plus the events after it when
/// they fit together (the cost then follows the tail, not the run), else a
/// replay of the whole log. The plan is built on a second thread meanwhile:
/// the tail's task ids are resolved from plan.bin directly.
resume_view load_for_resume(const run_paths& paths) {
  resume_view v;
  v.manifest = parse_manifest(read_file(paths.manifest()),
                              paths.manifest().string());
  std::exception_ptr plan_error;
  std::thread loader{[&] {
    try {
      v.plan = load_plan(paths);
    } catch (...) {
      plan_error = std::current_exception();
    }
  }};
  struct joiner {
    std::thread& t;
    ~joiner() {
      if (t.joinable())
        t.join();
    }
  } join_on_exit{loader};
  auto plan_ready = [&] {
    if (loader.joinable())
      loader.join();
    if (plan_error)
      std::rethrow_exception(plan_error);
  };
  std::error_code ec;
  auto plan_json_size = fs::file_size(paths.plan(), ec);
  auto ck = read_checkpoint(paths.checkpoint());
  if (ck && !ec)
    if (auto end = find_seq_end(paths.events(), ck->seq)) {
      auto lines = ck->seq;
      auto rep = replay_tail(paths.events(), *end, [&](task_id_map& ids) {
        if (!resolve_plan_bin_ids(paths.plan_bin(), plan_json_size, ids)) {
          plan_ready();
          for (uint32_t i = 0; i < v.plan.size(); ++i)
            if (auto pos = ids.find(v.plan[i].id); pos != ids.end())
              pos->second = std::min(pos->second, i);
        }
      }, *ck);
      plan_ready();
      if (ck->tasks.size() == v.plan.size() && !rep.plan_changed) {
        v.checkpoint_seq = lines;
        v.state = std::move(*ck);
        v.trusted = {rep.valid_end, v.state.seq, lines + rep.events};
        v.deadletters = std::move(rep.deadletters);
        return v;
      }
    }
  plan_ready();
  v.deadletters = deadletter_events(paths);
  auto replay = replay_log(paths.events(), v.plan);
  if (detail::grow_plan(v.plan, replay, paths)) {
    try {
      write_plan(paths, v.plan); // the next recovery starts from it
    } catch (const std::exception&) {
      // a cache of the log's adaptive.plan_injected events
    }
  }
  v.state = make_checkpoint(replay.tasks);
  v.state.seq = replay.last_seq;
  v.state.status = replay.status;
  v.state.summary = std::move(replay.summary);
  v.state.stop = std::move(replay.stop);
  return v;
}

} // namespace

void hand_over_run_lock(const run_setup& setup, int pid) {
  auto lock = std::static_pointer_cast<detail::run_lock>(setup.lock);
  if (!lock)
    throw io_error("hand_over_run_lock: the setup holds no lock");
  write_file_atomic(lock->path, detail::lock_body(pid, true));
  lock->handed_over = true;
}

run_setup_ptr prepare_resume(const project_context& ctx, std::string_view run_id,
                             resume_mode mode) {
  require_valid_run_id(run_id);
  auto paths = make_run_paths(ctx.crew_root, run_id);
  std::error_code ec;
  if (!fs::is_directory(paths.state_dir, ec))
    throw input_error(errc::not_found,
                      fmt::format("unknown run id '{}' (no {})", run_id,
                                  paths.state_dir.string()));
  // The lock first, then the state: nobody may change the log in between.
  // A run started with `run --async` gets its lock handed over by the
  // creating process right after it spawned us: wait for that briefly.
  std::shared_ptr<void> lock;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  for (;;) {
    try {
      lock = detail::acquire_lock(paths.lock(), run_id);
      break;
    } catch (const input_error&) {
      if (mode != resume_mode::start_queued
          || std::chrono::steady_clock::now() > deadline)
        throw;
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
  }
  auto view = load_for_resume(paths);
  auto status = view.state.status;
  if (mode == resume_mode::start_queued && status != run_status::queued)
    throw input_error(fmt::format("run '{}' is {}, not queued: nothing to start",
                                  run_id, to_string(status)));
  if (mode == resume_mode::recover && status != run_status::running)
    throw input_error(fmt::format(
      "run '{}' is not interrupted (it is {}): nothing to recover", run_id,
      to_string(status)));
  bool work_left = false;
  for (auto& t : view.state.tasks)
    work_left = work_left || t.status != task_status::completed;
  if (!work_left && status == run_status::completed)
    throw input_error(fmt::format(
      "run '{}' already completed: nothing to resume", run_id));
  detail::kill_orphaned_workers(view.state.tasks);
  detail::drop_stale_requests(paths);
  repair_deadletters(paths, run_id, view.deadletters);
  auto setup = std::make_shared<run_setup>();
  setup->paths = make_run_paths(ctx.crew_root, run_id);
  setup->manifest = view.manifest;
  auto& m = setup->manifest;
  m.owner_pid = ::getpid();
  m.owner_start = process_start_time(static_cast<int>(m.owner_pid));
  setup->plan = std::move(view.plan);
  setup->manifest.seq = view.state.seq;
  setup->checkpoint = std::move(view.state);
  setup->trusted_log = view.trusted;
  setup->checkpoint_seq = view.checkpoint_seq;
  setup->resume = mode == resume_mode::resume;
  setup->recover = mode == resume_mode::recover;
  if (m.runtime_mode == "sim") {
    setup->backend = backend_kind::sim;
    setup->engine.max_concurrent = 256;
  } else {
    setup->backend = detail::backend_for(ctx.config);
    uint32_t team_max = 0, wf_max = 0;
    if (auto team = ctx.resources.find_team(m.team))
      team_max = team->max_concurrency;
    if (auto wf = ctx.resources.find_workflow(m.workflow))
      wf_max = wf->max_concurrency;
    concurrency_inputs in;
    in.workflow_name = m.workflow;
    in.workflow_max = wf_max;
    in.team_max = team_max;
    in.limit_max = ctx.config.limits.max_concurrent_workers.value_or(0);
    in.allow_unbounded = ctx.config.limits.allow_unbounded_concurrency;
    setup->engine.max_concurrent = resolve_concurrency(in).max_concurrent;
    detail::fill_workers(*setup, ctx);
    detail::apply_adaptive(*setup, ctx, ctx.resources.find_team(m.team));
  }
  m.runtime_mode = to_string(setup->backend);
  setup->engine.runtime = m.runtime_mode;
  detail::apply_config(*setup, ctx.config);
  if (setup->backend == backend_kind::command)
    // tasks check the leader themselves
    detail::apply_workspace(*setup, ctx, false);
  setup->lock = std::move(lock);
  return setup;
}

} // namespace crew
