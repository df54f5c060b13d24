#include "actors/run.hpp"

#include <csignal>
#include <unistd.h>
#include <filesystem>
#include <iostream>

#include <caf/actor_system.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/send.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "actors/task_worker.hpp"
#include "actors/undeliverable.hpp"
#include "actors/worker_pool.hpp"
#include "observability/quantiles.hpp"
#include "runtime/scheduling/adaptive_run.hpp"
#include "runtime/workers/process.hpp"
#include "runtime/workers/prompt.hpp"
#include "store/atomic_file.hpp"
#include "store/checkpoint.hpp"
#include "store/clock.hpp"
#include "store/snapshot.hpp"

namespace crew {

namespace {

using self_ptr = run_impl::stateful_pointer<run_state>;
using namespace std::chrono_literals;

/// Cancel and deadletter requests (two stat calls) and the snapshot timers.
constexpr auto housekeeping_interval = 200ms;
/// Progress reports and scheduler gauges, every 5th tick: each wakes the
/// listener's and the metric sink's threads, which at every tick cost ~0.5 ms
/// of crew's CPU per pi task (bench/pi_modes.sh).
constexpr uint32_t report_every_ticks = 5;

int64_t steady_ns() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch())
    .count();
}

void pump(self_ptr self);
void arm_retry_timer(self_ptr self);
void kill_running(self_ptr self, const std::vector<uint32_t>& indices);

/// Kills `indices` once the engine's stop intent (if any) is durable;
/// until then they wait in `kill_after_stop`.
void kill_after_stop(self_ptr self, const std::vector<uint32_t>& indices) {
  auto& st = self->state;
  auto& pending = st.kill_after_stop;
  pending.insert(pending.end(), indices.begin(), indices.end());
  if (pending.empty() || st.engine->durable_seq() < st.engine->stop_seq())
    return;
  auto now = std::move(pending);
  pending.clear();
  kill_running(self, now);
}

void notify(self_ptr self, bool final) {
  auto& st = self->state;
  if (!st.listener)
    return;
  auto p = st.engine->progress();
  if (final) {
    p.finished = true;
    auto& lat = st.engine->latencies_us();
    if (!lat.empty()) {
      p.latency_p50_us = exact_quantile(lat, 0.50);
      p.latency_p99_us = exact_quantile(lat, 0.99);
    }
    caf::anon_send(st.listener, finished_atom_v, std::move(p));
  } else {
    caf::anon_send(st.listener, progress_atom_v, std::move(p));
  }
}

/// Read access to the engine's compact task states for snapshot writing.
class engine_source : public task_state_source {
public:
  explicit engine_source(const run_engine& eng) : eng_(eng) {
    // nop
  }

  task_status status(size_t i) const override {
    return eng_.tasks()[i].status;
  }

  task_state state(size_t i) const override {
    return eng_.to_task_state(static_cast<uint32_t>(i));
  }

private:
  const run_engine& eng_;
};

/// True when every emitted event is durable: only then may a snapshot or a
/// checkpoint describe the state (they are never ahead of the log).
bool all_durable(const run_engine& eng) {
  return eng.durable_seq() == eng.last_seq() && !eng.has_events();
}

/// Writes the pending checkpoint once the log is durable up to its seq.
void flush_checkpoint(self_ptr self) {
  auto& st = self->state;
  auto& setup = *st.setup;
  if (!st.pending_checkpoint || st.engine->durable_seq() < st.pending_checkpoint->seq)
    return;
  auto ck = std::move(st.pending_checkpoint);
  bool durable = setup.fsync != fsync_policy::none;
  try {
    // Recovery trusts the deadletter entries of the events before the
    // checkpoint to be on disk (they were appended when those events
    // became durable, which has happened).
    if (st.deadletters_unsynced && durable)
      append_file(setup.paths.deadletter(), {}, true); // fsync
    st.deadletters_unsynced = false;
    write_file_swap(setup.paths.checkpoint(), checkpoint_bin(*ck), durable);
  } catch (const std::exception& e) {
    // A cache of the log: a failed write costs a longer replay only.
    std::cerr << "crew: checkpoint of run " << setup.manifest.run_id
              << " not written: " << e.what() << "\n";
  }
}

/// Captures the engine's state for checkpoint.bin, which bounds recovery's
/// replay to the events after it. Cheap (a few bytes per task), so it runs
/// more often than tasks.json; under load the log is rarely fully durable,
/// so the capture waits for its seq to become durable before it is written.
void write_checkpoint(self_ptr self) {
  auto& st = self->state;
  auto& eng = *st.engine;
  st.last_checkpoint_ns = steady_ns();
  flush_checkpoint(self);
  if (!st.setup->write_snapshots || st.checkpoint_seq == eng.last_seq()
      || st.pending_checkpoint)
    return;
  st.pending_checkpoint = std::make_unique<run_checkpoint>(eng.checkpoint());
  st.checkpoint_seq = eng.last_seq();
  flush_checkpoint(self);
}

/// Writes tasks.json and manifest.json for the engine's state, streamed and
/// atomically, then the checkpoint. Only when every emitted event is
/// durable (else the next housekeeping tick tries again).
void write_snapshot(self_ptr self) {
  auto& st = self->state;
  auto& setup = *st.setup;
  auto& eng = *st.engine;
  if (!setup.write_snapshots || st.snapshot_seq == eng.last_seq()
      || !all_durable(eng))
    return;
  auto manifest = setup.manifest;
  manifest.status = eng.status();
  manifest.summary = eng.summary();
  manifest.updated_at = iso_now();
  manifest.seq = eng.last_seq();
  manifest.runtime_mode = to_string(setup.backend);
  if (is_terminal(eng.status()))
    manifest.owner_pid = 0;
  bool durable = setup.fsync != fsync_policy::none;
  try {
    write_file_swap_with(
      setup.paths.tasks(),
      [&](const content_sink& sink) {
        write_tasks_json(setup.manifest.run_id, setup.plan, engine_source{eng},
                         setup.manifest.cwd, sink);
      },
      durable);
    write_file_swap(setup.paths.manifest(), manifest_json(manifest), durable);
  } catch (const std::exception& e) {
    // Snapshots are caches of the log: a failed write costs a longer replay
    // only. Say so once per failure and keep running.
    std::cerr << "crew: snapshot of run " << setup.manifest.run_id
              << " not written: " << e.what() << "\n";
  }
  st.snapshot_seq = eng.last_seq();
  st.last_snapshot_ns = steady_ns();
  write_checkpoint(self);
}

void send_scheduler_stats(self_ptr self) {
  auto& st = self->state;
  if (!st.sink || !st.engine)
    return;
  auto p = st.engine->progress();
  scheduler_stats x;
  x.run_id = st.setup->manifest.run_id;
  x.queued = p.queued;
  x.running = p.running;
  x.dispatch_latency_ms = st.engine->take_dispatch_latency();
  self->send(st.sink, stats_atom_v, std::move(x));
}

void finish(self_ptr self) {
  auto& st = self->state;
  if (st.stopping)
    return;
  st.stopping = true;
  write_snapshot(self);
  // The snapshots are not rewritten any more: their spares go.
  for (auto& p : {st.setup->paths.tasks(), st.setup->paths.manifest(),
                  st.setup->paths.checkpoint()}) {
    std::error_code ec;
    std::filesystem::remove(spare_path(p), ec);
  }
  if (st.deadletters_written && st.setup->fsync != fsync_policy::none) {
    try {
      append_file(st.setup->paths.deadletter(), {}, true); // fsync
    } catch (const std::exception& e) {
      std::cerr << "crew: " << e.what() << "\n";
    }
  }
  send_scheduler_stats(self);
  self->request(st.journal, caf::infinite, caf::close_atom_v,
                st.setup->manifest.run_id)
    .then([=](bool) {
      if (self->state.sink)
        self->send(self->state.sink, untrack_atom_v,
                   self->state.setup->manifest.run_id);
      notify(self, true);
      if (self->state.pool)
        self->send_exit(self->state.pool, caf::exit_reason::user_shutdown);
      self->quit();
    },
    [=](const caf::error&) {
      notify(self, true);
      self->quit();
    });
}

/// The journal failed: nothing more can be made durable. Stop the workers
/// and leave the run as it is on disk (it will show as interrupted).
void fail_fatally(self_ptr self, std::string what) {
  auto& st = self->state;
  if (!st.fatal.empty())
    return;
  st.fatal = std::move(what);
  for (auto& [index, worker] : st.pgids)
    kill_process_group(worker.second, SIGKILL);
  if (st.listener) {
    auto p = st.engine->progress();
    p.status = "error: " + st.fatal;
    p.finished = true;
    caf::anon_send(st.listener, finished_atom_v, std::move(p));
  }
  if (st.pool)
    self->send_exit(st.pool, caf::exit_reason::user_shutdown);
  // Release the journal's handle on the log (a later resume reopens it).
  caf::anon_send(caf::actor_cast<caf::actor>(st.journal), caf::close_atom_v,
                 st.setup->manifest.run_id);
  self->quit(caf::make_error(caf::sec::runtime_error, st.fatal));
}

/// Appends the deadletter entries whose events are durable to
/// deadletter.jsonl (the log stays the source of truth: `crew verify` checks
/// the file against it).
void write_deadletters(self_ptr self) {
  auto& st = self->state;
  auto lines = st.engine->take_durable_deadletters();
  if (lines.empty())
    return;
  try {
    // Not fsync'd here: the log holds every deadletter event durably, the
    // file is synced when the run ends, and a resume or recovery rewrites
    // entries a crash lost (repair_deadletters). A sync per batch would put
    // an fsync on the scheduling thread.
    append_file(st.setup->paths.deadletter(), lines, false);
    st.deadletters_written = true;
    st.deadletters_unsynced = true;
  } catch (const std::exception& e) {
    std::cerr << "crew: " << e.what() << "\n";
  }
  // The router counts deadletters for the deadletter-rate alert.
  if (st.router) {
    for (size_t pos = 0; pos < lines.size();) {
      auto end = lines.find('\n', pos);
      try {
        auto j = nlohmann::json::parse(lines.substr(pos, end - pos));
        self->send(st.router, deadletter_atom_v,
                   deadletter_notice{j.value("runId", ""), j.value("taskId", ""),
                                     j.value("reason", "")});
      } catch (const std::exception&) {
        // our own lines: always valid
      }
      pos = end + 1;
    }
  }
}

/// plan.json and plan.bin of a plan grown by an adaptive planner, once the
/// adaptive.plan_injected event is durable (a replay rebuilds the plan from
/// that event; the files let recovery start from a checkpoint again). Before
/// any later checkpoint: a checkpoint of the grown plan needs its plan.bin.
void write_grown_plan(self_ptr self) {
  auto& st = self->state;
  if (st.plan_seq == 0 || st.engine->durable_seq() < st.plan_seq)
    return;
  st.plan_seq = 0;
  try {
    write_plan(st.setup->paths, st.setup->plan,
               st.setup->fsync != fsync_policy::none);
  } catch (const std::exception& e) {
    std::cerr << "crew: plan of run " << st.setup->manifest.run_id
              << " not rewritten (recovery replays the whole log): "
              << e.what() << "\n";
  }
}

/// The planner task of an `implementation` run completed: read its output
/// and grow the run by its tasks, or end the run blocked (inventory §4.9).
void inject_adaptive(self_ptr self) {
  auto& st = self->state;
  auto& eng = *st.engine;
  adaptive_injection inj;
  try {
    inj = prepare_adaptive_injection(*st.setup, st.setup->engine.adaptive_assess);
  } catch (const std::exception& e) {
    inj = {};
    inj.events.push_back({"adaptive.plan_missing",
                          std::string{"Adaptive planner produced no usable plan: "}
                            + e.what(),
                          "{}"});
  }
  for (auto& ev : inj.events)
    eng.record(ev.type, ev.message, ev.data);
  if (!inj.setup) {
    eng.adaptive_blocked(adaptive_blocked_summary);
    return;
  }
  if (!inj.repair_json.empty()) {
    try {
      auto dir = st.setup->paths.artifacts_dir / "metadata";
      std::filesystem::create_directories(dir);
      write_file_atomic(dir / "adaptive-repair.json", inj.repair_json, false);
    } catch (const std::exception& e) {
      std::cerr << "crew: " << e.what() << "\n";
    }
  }
  st.setup = std::move(inj.setup);
  auto& setup = *st.setup;
  eng.inject(setup.plan, setup.engine.max_attempts, inj.message, inj.data);
  st.plan_seq = eng.last_seq();
  // Task indices of later notes refer to the grown plan.
  if (st.sink)
    self->send(st.sink, track_atom_v, setup.manifest.run_id, setup.manifest.team,
               plan_ptr{st.setup, &st.setup->plan});
}

/// Ships buffered events to the journal; the reply moves the durable seq.
void flush(self_ptr self) {
  auto& st = self->state;
  if (!st.fatal.empty() || !st.engine->has_events())
    return;
  auto seq = st.engine->last_seq();
  ++st.appends_in_flight;
  auto notes = std::make_shared<std::vector<event_note>>(st.engine->take_notes());
  self->request(st.journal, caf::infinite, append_atom_v,
                st.setup->manifest.run_id, st.engine->take_events(), seq)
    .then(
      [=](uint64_t durable) {
        auto& st = self->state;
        --st.appends_in_flight;
        // Journal first, then subscribers: the digests of these events go
        // to the metric sink once the events are durable.
        if (st.sink && !notes->empty())
          self->send(st.sink, notes_atom_v, st.setup->manifest.run_id,
                     std::move(*notes));
        st.engine->on_durable(durable);
        kill_after_stop(self, {});
        write_deadletters(self);
        write_grown_plan(self);
        flush_checkpoint(self);
        pump(self);
      },
      [=](const caf::error& err) {
        fail_fatally(self, "journal: " + to_string(err));
      });
}

std::filesystem::path artifact(const run_setup& setup, const char* dir,
                               const std::string& task_id, const char* ext) {
  return setup.paths.artifacts_dir / dir / (task_id + ext);
}

task_attempt make_attempt(self_ptr self, uint32_t index) {
  auto& setup = *self->state.setup;
  auto& eng = *self->state.engine;
  auto& p = setup.plan[index];
  task_attempt job;
  job.run_id = setup.manifest.run_id;
  job.task_id = p.id;
  job.index = index;
  job.attempt = eng.tasks()[index].attempt;
  job.command_line = index < setup.commands.size() ? setup.commands[index] : "";
  job.backend = setup.backend == backend_kind::scaffold ? "scaffold"
                : job.command_line.empty()              ? "pi"
                                                        : "command";
  job.cwd = setup.manifest.cwd;
  job.timeout_ms = index < setup.timeouts_ms.size() ? setup.timeouts_ms[index]
                                                     : 0;
  prompt_context ctx;
  ctx.run_id = setup.manifest.run_id;
  ctx.team = setup.manifest.team;
  ctx.workflow = setup.manifest.workflow;
  ctx.state_root = setup.paths.state_dir.string();
  ctx.artifacts_root = setup.paths.artifacts_dir.string();
  ctx.events_path = setup.paths.events().string();
  ctx.task_id = p.id;
  ctx.task_cwd = setup.worktrees ? (setup.paths.crew_root / "worktrees"
                                    / setup.manifest.run_id / p.id)
                                     .string()
                                : setup.manifest.cwd;
  ctx.workspace_mode = setup.manifest.workspace_mode;
  ctx.goal = setup.manifest.goal;
  ctx.step_id = p.step_id;
  ctx.role = p.role;
  ctx.agent = p.agent;
  ctx.task_text = p.task;
  for (auto dep : p.deps) {
    auto& dp = setup.plan[dep];
    dependency_output out;
    out.task_id = dp.id;
    out.title = dp.title;
    out.status = to_string(eng.tasks()[dep].status);
    auto path = artifact(setup, "results", dp.id,
                         setup.backend == backend_kind::scaffold ? ".md"
                                                                 : ".txt");
    out.result_path = path.string();
    out.result_text = read_result_excerpt(path);
    ctx.deps.push_back(std::move(out));
  }
  job.prompt = render_prompt(ctx);
  job.prompt_path = artifact(setup, "prompts", p.id, ".md").string();
  job.result_path = artifact(setup, "results", p.id,
                             setup.backend == backend_kind::scaffold ? ".md"
                                                                     : ".txt")
                      .string();
  job.log_path = artifact(setup, "logs", p.id, ".log").string();
  job.agent = p.agent;
  job.role = p.role;
  if (job.backend == "pi") {
    if (index < setup.pi.size()) {
      auto& pi = setup.pi[index];
      job.models = pi.models;
      job.thinking = pi.thinking;
      job.tools = pi.tools;
      job.system_prompt = pi.system_prompt;
      job.replace_system_prompt = pi.replace_system_prompt;
    }
    job.response_timeout_ms = setup.pi_response_timeout_ms;
    job.transcript_path = artifact(setup, "transcripts", p.id, ".jsonl").string();
    job.agent_dir = (setup.paths.agents_dir() / p.id).string();
    job.max_depth = setup.max_task_depth;
  }
  job.env = {
    "CREW_RUN_ID=" + job.run_id,
    "CREW_TASK_ID=" + job.task_id,
    "CREW_ATTEMPT=" + std::to_string(job.attempt),
    "CREW_ARTIFACTS_DIR=" + setup.paths.artifacts_dir.string(),
    "CREW_STATE_DIR=" + setup.paths.state_dir.string(),
    "CREW_PROMPT_FILE=" + job.prompt_path,
  };
  return job;
}

void dispatch(self_ptr self, const std::vector<uint32_t>& indices) {
  auto& st = self->state;
  auto& setup = *st.setup;
  if (setup.backend == backend_kind::sim) {
    st.sim_buf.clear();
    for (auto i : indices)
      st.sim_buf.push_back(sim_job{i, st.engine->tasks()[i].attempt});
    self->send(st.pool, dispatch_atom_v, st.sim_buf);
    return;
  }
  for (auto i : indices) {
    auto job = make_attempt(self, i);
    auto attempt = job.attempt;
    auto worker = self->spawn<caf::detached + caf::monitored>(
      task_worker, caf::actor_cast<run_actor>(self), std::move(job),
      st.setup);
    st.workers.emplace(worker.address(), std::make_pair(i, attempt));
  }
}

/// The scheduling step: start what may start, ship events, finish when done.
void pump(self_ptr self) {
  auto& st = self->state;
  if (!st.fatal.empty() || st.stopping)
    return;
  auto& eng = *st.engine;
  if (eng.adaptive_pending())
    inject_adaptive(self);
  st.dispatch_buf.clear();
  eng.next_dispatch(st.dispatch_buf);
  if (!st.dispatch_buf.empty())
    dispatch(self, st.dispatch_buf);
  // Backoff timers: no thread sleeps, the run actor gets a message.
  auto retries = eng.take_retries();
  if (!retries.empty()) {
    auto now = steady_ns();
    for (auto [index, delay] : retries)
      st.retry_heap.emplace(now + static_cast<int64_t>(delay) * 1'000'000, index);
    arm_retry_timer(self);
  }
  flush(self);
  if (eng.finished())
    finish(self);
}

void arm_retry_timer(self_ptr self) {
  auto& st = self->state;
  if (st.retry_heap.empty())
    return;
  auto due = st.retry_heap.top().first;
  if (st.retry_timer_ns != 0 && st.retry_timer_ns <= due)
    return;
  st.retry_timer_ns = due;
  self->delayed_send(self, std::chrono::nanoseconds{std::max<int64_t>(0, due - steady_ns())},
                     retry_atom_v);
}

void kill_running(self_ptr self, const std::vector<uint32_t>& indices) {
  auto& st = self->state;
  if (st.setup->backend == backend_kind::sim) {
    self->send(st.pool, cancel_atom_v);
    return;
  }
  for (auto i : indices)
    if (auto p = st.pgids.find(i); p != st.pgids.end()) {
      auto pgid = p->second.second;
      kill_process_group(pgid, SIGTERM);
      // Only this group gets the SIGKILL after the grace period, and only if
      // it still runs then.
      self->delayed_send(self, std::chrono::milliseconds{st.setup->kill_grace_ms},
                         hardkill_atom_v, pgid);
    }
}

void cancel_run(self_ptr self, std::string reason, bool expired) {
  auto& eng = *self->state.engine;
  auto running = expired ? eng.expire(std::move(reason))
                         : eng.cancel(std::move(reason));
  kill_after_stop(self, running);
  pump(self);
}

void on_results(self_ptr self, const std::vector<attempt_result>& results) {
  auto& st = self->state;
  for (auto& res : results) {
    // Only the result of the attempt a group belongs to releases it: a late
    // "down" of an earlier attempt must not forget the next one's process.
    if (auto p = st.pgids.find(res.index);
        p != st.pgids.end() && p->second.first == res.attempt) {
      st.pgids.erase(p);
      if (st.watcher)
        self->send(st.watcher, unwatch_atom_v, st.setup->manifest.run_id,
                   res.index);
    }
    st.engine->on_result(res);
  }
  pump(self);
}

void housekeep(self_ptr self) {
  auto& st = self->state;
  if (st.stopping || !st.fatal.empty())
    return;
  if (st.ticks++ % report_every_ticks == 0) {
    notify(self, false);
    send_scheduler_stats(self);
  }
  std::error_code ec;
  auto request = st.setup->paths.cancel_request();
  if (std::filesystem::exists(request, ec)) {
    int64_t owner = -1;
    try {
      owner = nlohmann::json::parse(read_file(request)).value("owner", int64_t{-1});
    } catch (const std::exception&) {
      // being written: the next tick reads it
    }
    if (owner != -1) {
      std::filesystem::remove(request, ec);
      // Only a request addressed to this process (not a stale one).
      if (owner == static_cast<int64_t>(::getpid()))
        cancel_run(self, "Run cancelled by user request.", false);
    }
  }
  // Deadletter by hand (crew deadletter --task): one task id per line.
  auto dl_request = st.setup->paths.deadletter_request();
  if (!st.engine->done() && std::filesystem::exists(dl_request, ec)) {
    // Take the file away first, so a request appended meanwhile starts a
    // new file instead of being lost.
    auto taken = dl_request;
    taken += ".taken";
    std::string text;
    if (std::filesystem::rename(dl_request, taken, ec); !ec) {
      try {
        text = read_file(taken);
      } catch (const std::exception&) {
        // nop
      }
      std::filesystem::remove(taken, ec);
    }
    if (!text.empty()) {
      auto& plan = st.setup->plan;
      auto me = std::to_string(::getpid());
      for (size_t pos = 0; pos < text.size();) {
        auto end = text.find('\n', pos);
        auto line = text.substr(pos, end - pos);
        pos = end == std::string::npos ? text.size() : end + 1;
        auto tab = line.find('\t');
        if (tab == std::string::npos || line.substr(tab + 1) != me)
          continue; // addressed to another (earlier) owner
        auto id = line.substr(0, tab);
        for (uint32_t i = 0; i < plan.size(); ++i) {
          if (plan[i].id != id)
            continue;
          auto kill = st.engine->deadletter_by_hand(i);
          // A sim attempt just ends on its own; processes are stopped.
          if (st.setup->backend != backend_kind::sim)
            kill_running(self, kill);
        }
      }
      pump(self);
    }
  }
  auto interval = static_cast<int64_t>(st.setup->snapshot_interval_ms) * 1'000'000;
  if (interval > 0 && steady_ns() - st.last_snapshot_ns >= interval)
    write_snapshot(self);
  auto ck_interval
    = static_cast<int64_t>(st.setup->checkpoint_interval_ms) * 1'000'000;
  if (ck_interval > 0 && steady_ns() - st.last_checkpoint_ns >= ck_interval)
    write_checkpoint(self);
  self->delayed_send(self, housekeeping_interval, housekeep_atom_v);
}

void begin(self_ptr self, uint64_t last_seq, const std::string& repair_note) {
  auto& st = self->state;
  auto& setup = *st.setup;
  auto opts = setup.engine;
  opts.notes = static_cast<bool>(st.sink); // no digests without a metric sink
  st.engine = std::make_unique<run_engine>(setup.manifest.run_id, setup.plan,
                                           last_seq, opts);
  if (setup.resume || setup.recover)
    st.engine->load_checkpoint(setup.checkpoint);
  if (!repair_note.empty())
    st.engine->record("crew.log.repaired", repair_note, {});
  if (setup.recover)
    st.engine->start_recovered("Recovered team workflow.",
                               setup.checkpoint_seq);
  else
    st.engine->start(setup.resume ? "Resuming team workflow."
                                  : "Executing team workflow.",
                     setup.resume);
  st.started = true;
  st.last_snapshot_ns = st.last_checkpoint_ns = steady_ns();
  if (st.sink)
    self->send(st.sink, track_atom_v, setup.manifest.run_id, setup.manifest.team,
               plan_ptr{st.setup, &st.setup->plan});
  if (setup.max_run_ms > 0)
    self->delayed_send(self, std::chrono::milliseconds{setup.max_run_ms},
                       deadline_atom_v);
  self->send(self, housekeep_atom_v);
  pump(self);
}

} // namespace

run_impl::behavior_type run(self_ptr self, run_setup_ptr setup,
                            journal_actor journal, metric_sink_actor sink,
                            caf::actor listener, std::string deadletter_path,
                            notification_router_actor router,
                            heartbeat_watcher_actor watcher) {
  self->set_default_handler(undeliverable_handler(deadletter_path));
  auto& st = self->state;
  st.router = std::move(router);
  st.watcher = std::move(watcher);
  st.setup = std::move(setup);
  st.journal = std::move(journal);
  st.sink = std::move(sink);
  st.listener = std::move(listener);
  if (st.setup->backend == backend_kind::sim) {
    st.pool = self->spawn<caf::linked>(worker_pool, caf::actor_cast<run_actor>(self),
                                       st.setup->sim,
                                       st.setup->sim_hang_timeout_ms,
                                       deadletter_path);
  }
  self->set_down_handler([=](const caf::down_msg& dm) {
    auto& st = self->state;
    auto i = st.workers.find(dm.source);
    if (i == st.workers.end())
      return;
    auto [index, attempt] = i->second;
    st.workers.erase(i);
    // A worker that dies without reporting is a failed attempt, never a
    // lost task (on_result ignores it if the result did arrive).
    attempt_result res;
    res.index = index;
    res.attempt = attempt;
    res.error = dm.reason ? "task worker died: " + to_string(dm.reason)
                          : "task worker exited without a result";
    on_results(self, {res});
  });
  auto& trusted = st.setup->trusted_log;
  self->request(st.journal, caf::infinite, caf::open_atom_v,
                st.setup->manifest.run_id, st.setup->paths.events().string(),
                trusted.offset, trusted.seq, trusted.lines)
    .then([=](uint64_t last_seq,
              const std::string& note) { begin(self, last_seq, note); },
          [=](const caf::error& err) {
            self->state.engine = std::make_unique<run_engine>(
              self->state.setup->manifest.run_id, self->state.setup->plan, 0,
              self->state.setup->engine);
            fail_fatally(self, "journal: " + to_string(err));
          });
  return {
    [=](result_atom, const std::vector<attempt_result>& results) {
      on_results(self, results);
    },
    [=](started_atom, const attempt_started& x) {
      auto& st = self->state;
      if (!st.engine)
        return;
      auto& t = st.engine->tasks()[x.index];
      if (t.status != task_status::running || t.attempt != x.attempt)
        return;
      st.pgids[x.index] = {x.attempt, x.pid};
      // Only running attempts with a process are watched.
      if (st.watcher)
        self->send(st.watcher, watch_atom_v, caf::actor_cast<caf::actor>(self),
                   st.setup->manifest.run_id, x.index, x.attempt, x.pid);
      st.engine->worker_started(x.index, x.attempt, x.pid,
                                process_start_time(x.pid));
      flush(self);
      // Cancelled while the process was starting: stop it now (once the
      // stop is durable).
      if (t.cancel_requested)
        kill_after_stop(self, {x.index});
    },
    [=](beat_atom, uint32_t index, uint32_t attempt) {
      auto& st = self->state;
      if (st.watcher && st.engine && st.engine->tasks()[index].attempt == attempt)
        self->send(st.watcher, beat_atom_v, st.setup->manifest.run_id, index);
    },
    [=](hbdead_atom, uint32_t index, uint32_t attempt, uint64_t elapsed,
        uint32_t consecutive) {
      auto& st = self->state;
      if (!st.engine || st.stopping)
        return;
      auto& plan = st.setup->plan;
      if (consecutive == 1) {
        st.engine->heartbeat_dead(index, attempt, elapsed);
        if (st.router) {
          notification n;
          n.id = "dead_" + st.setup->manifest.run_id + "_" + plan[index].id;
          n.source = "heartbeat-watcher";
          n.run_id = st.setup->manifest.run_id;
          n.sev = severity::warning;
          n.title = "Task " + plan[index].id + " heartbeat dead";
          n.body = fmt::format("No activity for {} ms (attempt {}).", elapsed,
                               attempt);
          self->send(st.router, notify_atom_v, std::move(n));
        }
      }
      if (consecutive >= st.setup->deadletter_threshold
          && st.engine->heartbeat_deadletter(index, attempt, elapsed))
        kill_running(self, {index}); // the retry policy decides what follows
      pump(self);
    },
    [=](cancel_atom) {
      if (self->state.started)
        cancel_run(self, "Run cancelled by user request.", false);
    },
    [=](retry_atom) {
      auto& st = self->state;
      st.retry_timer_ns = 0;
      if (!st.engine)
        return;
      auto now = steady_ns();
      while (!st.retry_heap.empty() && st.retry_heap.top().first <= now) {
        st.engine->retry_due(st.retry_heap.top().second);
        st.retry_heap.pop();
      }
      arm_retry_timer(self);
      pump(self);
    },
    [=](hardkill_atom, int32_t pgid) {
      for (auto& [index, worker] : self->state.pgids)
        if (worker.second == pgid)
          kill_process_group(pgid, SIGKILL);
    },
    [=](deadline_atom) {
      auto minutes = self->state.setup->max_run_ms / 60000;
      cancel_run(self,
                 fmt::format("Run exceeded limits.maxRunMinutes ({} min).",
                             minutes),
                 true);
    },
    [=](housekeep_atom) { housekeep(self); },
  };
}

} // namespace crew
