#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "messages/metrics.hpp"
#include "messages/task.hpp"
#include "runtime/supervision/retry_policy.hpp"
#include "store/checkpoint.hpp"
#include "store/correlation.hpp"
#include "store/model.hpp"

namespace crew {

/// Tuning of one run's scheduler.
struct engine_options {
  uint32_t max_concurrent = 1;   ///< ceiling on running tasks
  uint64_t backlog_limit = 1u << 16; ///< un-synced events before dispatch pauses
  std::string runtime = "child-process"; ///< label written into task.started
  bool record_latency = false;   ///< keep ready->done latencies (load test)
  bool notes = true;             ///< produce event_notes for the metric sink
  retry_policy retry;            ///< reliability.autoRetry / retryPolicy
  /// Per task (plan index): max attempts from the agent's `maxAttempts`,
  /// 0 = the policy's. May be empty.
  std::vector<uint32_t> max_attempts;
  /// Workflow `implementation`: the plan index of the planner task (pi-crew's
  /// `assess`) whose durable completion pauses the run until the owner
  /// injects the planner's tasks (`inject`) or gives up (`adaptive_blocked`);
  /// UINT32_MAX: none.
  uint32_t adaptive_assess = UINT32_MAX;
};

/// The compact in-memory state of one task while a run executes.
struct task_runtime {
  task_status status = task_status::queued;
  bool cancel_requested = false;
  bool has_exit_code = false;
  bool waiting = false;     ///< a failed attempt waits for its retry timer
  bool manual_deadletter = false; ///< deadlettered by hand while running
  bool heartbeat_killed = false;  ///< killed by the heartbeat watcher
  bool retry_ready = false; ///< its retry timer fired: dispatch again
  uint32_t attempt = 0;        ///< attempts started so far
  uint32_t remaining_deps = 0; ///< dependencies not yet durably completed
  int32_t exit_code = 0;
  int64_t started_ms = 0;  ///< unix ms of the last task.started, 0 if none
  int64_t finished_ms = 0; ///< unix ms of the terminal event, 0 if none
  int64_t ready_ns = 0;    ///< steady-clock ns when it became ready
  int64_t retry_due_ms = 0; ///< unix ms when a waiting retry may start
};

/// The event-sourced scheduler of one run: a pure state machine that the
/// run actor drives. Every state change is an event appended to an internal
/// buffer (pi-crew's JSONL line format); the actor ships those bytes to the
/// journal and reports back which seq became durable.
///
/// Invariants it keeps: dependents are released only after the dependency's
/// terminal event is durable; a failure skips exactly the transitive
/// dependents; every task reaches exactly one terminal state and one
/// terminal event; the final run event is emitted after every task event.
class run_engine {
public:
  using clock = std::chrono::system_clock;

  run_engine(std::string run_id, const std::vector<planned_task>& plan,
             uint64_t last_seq, engine_options opts);

  /// Loads task states rebuilt from the log (for resume) before start().
  void load_states(const std::vector<task_state>& states);

  /// Loads task states from a checkpoint (resume, recover): the compact
  /// form `load_states` converts to.
  void load_checkpoint(const run_checkpoint& ck);

  /// The engine's state at `last_seq()`, for `checkpoint.bin`.
  run_checkpoint checkpoint() const;

  /// Emits run.running and, when resuming, task.requeued for every task that
  /// is not completed (a resume is the user's decision: it withdraws a stop
  /// the log holds). Computes the initial ready set.
  void start(std::string_view summary, bool resume);

  /// Crash recovery: like a resume, but only the interrupted attempts (tasks
  /// running when the owner died) are requeued; failed tasks stay failed.
  /// Emits `crew.run.resumed {recoveredFromSeq, resumableTasks,
  /// checkpointSeq}` first (`checkpoint_seq`: the checkpoint.bin the state
  /// was loaded from, 0 after a full replay).
  ///
  /// A loaded state whose log holds a stop intent (`run_checkpoint::stop`)
  /// finishes that stop instead: nothing is requeued or dispatched, every
  /// task not ended ends now (`cancelled`; for an expiry `failed`, queued
  /// ones `skipped`) and so does the run, without another `run.running`.
  void start_recovered(std::string_view summary, uint64_t checkpoint_seq = 0);

  /// Appends the tasks to start now (bounded by free slots and the un-synced
  /// backlog) and emits their task.started events.
  void next_dispatch(std::vector<uint32_t>& out);

  /// Records the end of an attempt. Stale results (a task no longer running
  /// that attempt) are ignored; returns false for them.
  bool on_result(const attempt_result& res);

  /// Everything up to `seq` is durable: release dependents, propagate skips,
  /// detect blocked runs and emit the final run event when all is done.
  void on_durable(uint64_t seq);

  /// Cancels the run: emits the intent `crew.run.cancel_requested` first
  /// (kill nothing before it is durable, see `stop_seq`), then queued tasks
  /// become cancelled at once, running ones when their attempt ends.
  /// Returns the running task indices to kill. A run whose tasks all ended
  /// (it only waits for the last terminal event to be durable) ignores it:
  /// it ends as its tasks say, `completed` when they all completed.
  std::vector<uint32_t> cancel(std::string reason);

  /// Like cancel, for limits.maxRunMinutes (intent `crew.run.expired`):
  /// running tasks end failed, queued ones skipped, and the run ends failed.
  std::vector<uint32_t> expire(std::string reason);

  /// Seq of the stop intent event (0: none). Its workers may be killed once
  /// it is durable (`durable_seq() >= stop_seq()`): a crash from then on
  /// leaves a log that recovery finishes the stop from.
  uint64_t stop_seq() const noexcept {
    return stop_seq_;
  }

  /// The run is stopping (cancel or expiry): it only finishes.
  bool stopping() const noexcept {
    return cancelling_;
  }

  /// Deadletters task `index` by hand (reason `manual`): a queued or waiting
  /// task fails now, a running one when its attempt ends (returned: kill
  /// it), a finished one only gets the entry. Returns the tasks to kill.
  std::vector<uint32_t> deadletter_by_hand(uint32_t index);

  /// The heartbeat watcher saw attempt `attempt` of task `index` go dead:
  /// records `crew.task.heartbeat_dead {elapsedMs}` (first dead tick).
  void heartbeat_dead(uint32_t index, uint32_t attempt, uint64_t elapsed_ms);

  /// The attempt stayed dead for the deadletter threshold: a
  /// `heartbeat-dead` deadletter entry now; the attempt (killed by the run
  /// actor) then fails with a heartbeat error and the retry policy decides.
  /// Returns false for a stale attempt.
  bool heartbeat_deadletter(uint32_t index, uint32_t attempt, uint64_t elapsed_ms);

  /// The backoff of task `index` is over: its next attempt may start.
  void retry_due(uint32_t index);

  /// Hands over the retries scheduled since the last call: (task index,
  /// delay in ms). The run actor arms one timer for each.
  std::vector<std::pair<uint32_t, uint64_t>> take_retries();

  /// Hands over the deadletter.jsonl lines whose events are durable.
  std::string take_durable_deadletters();

  /// Records the worker process of a running attempt (`task.worker`), so
  /// that a later process can find it if this one dies. Returns false for a
  /// stale attempt.
  bool worker_started(uint32_t index, uint32_t attempt, int32_t pid,
                      uint64_t start_time);

  // -- adaptive plans (inventory §4.9) -----------------------------------------

  /// The planner task completed durably and its tasks are not injected yet:
  /// the run does not finish until `inject` or `adaptive_blocked`.
  bool adaptive_pending() const noexcept {
    return adaptive_pending_;
  }

  /// Grows the run to `plan`, which must start with the current plan (the
  /// engine keeps a reference to it, like the constructor's): emits
  /// `adaptive.plan_injected` with `message` and `data`, then the new tasks
  /// are queued and those whose dependencies completed are ready.
  /// `max_attempts` replaces engine_options::max_attempts. Does nothing but
  /// end the pause once the run is cancelled or done.
  void inject(const std::vector<planned_task>& plan,
              std::vector<uint32_t> max_attempts, std::string_view message,
              std::string_view data);

  /// The planner's output held no usable plan: every queued task is skipped
  /// with `summary`, and the run ends blocked with it.
  void adaptive_blocked(std::string_view summary);

  /// Records an informational event (e.g. a repaired log tail).
  void record(std::string_view type, std::string_view message,
              std::string_view data);

  // -- event buffer -----------------------------------------------------------

  bool has_events() const noexcept {
    return !buf_.empty();
  }

  /// Hands over the buffered event lines (the buffer starts over).
  std::string take_events();

  uint64_t last_seq() const noexcept {
    return seq_;
  }

  /// Hands over the metric digests of the events since the last call (they
  /// belong to the events of the matching take_events call).
  std::vector<event_note> take_notes();

  /// Hands over ready -> dispatched latencies (ms, default metric buckets)
  /// observed since the last call.
  bucketed take_dispatch_latency();

  uint64_t durable_seq() const noexcept {
    return durable_;
  }

  // -- state ------------------------------------------------------------------

  /// The final run event was emitted (no more dispatch).
  bool done() const noexcept {
    return final_seq_ != 0;
  }

  /// The final run event is durable: the run may report its status.
  bool finished() const noexcept {
    return final_seq_ != 0 && durable_ >= final_seq_;
  }

  run_status status() const noexcept {
    return status_;
  }

  const std::string& summary() const noexcept {
    return summary_;
  }

  run_progress progress() const;

  const std::vector<task_runtime>& tasks() const noexcept {
    return tasks_;
  }

  /// Error text of a task, empty if none.
  std::string_view error_of(uint32_t index) const;

  /// Converts the compact state to the store's task_state (for snapshots).
  task_state to_task_state(uint32_t index) const;

  /// Ready->durably-done latencies in microseconds (record_latency only).
  std::vector<double>& latencies_us() noexcept {
    return latencies_;
  }

  bool running_any() const noexcept {
    return running_ > 0;
  }

private:
  /// Which span an event belongs to: the run, a task, or a task's current
  /// attempt (run -> task -> attempt).
  enum class span_level : uint8_t { run, task, attempt };

  static constexpr uint32_t no_task = UINT32_MAX;

  void emit(std::string_view type, uint32_t task, std::string_view message,
            std::string_view data, clock::time_point now,
            span_level level = span_level::run);
  void emit_run_status(run_status st, std::string_view summary);
  void finish_task(uint32_t index, task_status st, std::string_view message,
                   std::string_view data, clock::time_point now,
                   uint64_t duration_ms = 0);
  void make_ready(uint32_t index, int64_t now_ns);
  void requeue(uint32_t index, clock::time_point now, std::string_view message);
  /// Computes the ready set; `announce`: emits run.running first.
  void begin(std::string_view summary, bool announce);
  uint32_t max_attempts_of(uint32_t index) const;
  void deadletter(uint32_t index, std::string_view reason,
                  std::string_view last_error, clock::time_point now);
  void skip_dependents(uint32_t failed_index);
  std::vector<uint32_t> stop(stop_kind kind, std::string reason);
  void end_open_tasks(std::vector<uint32_t>& to_kill, bool interrupted);
  bool awaiting_injection() const noexcept;
  void maybe_finish();
  void index_dependents();

  std::string run_id_;
  correlation ids_;
  const std::vector<planned_task>* plan_; ///< grows by `inject` only
  engine_options opts_;
  std::vector<task_runtime> tasks_;
  /// Dependents of task i: dependents_[dependents_at_[i] .. dependents_at_[i+1]).
  std::vector<uint32_t> dependents_at_;
  std::vector<uint32_t> dependents_;

  std::span<const uint32_t> dependents_of(uint32_t i) const noexcept {
    return {dependents_.data() + dependents_at_[i],
            dependents_.data() + dependents_at_[i + 1]};
  }
  std::unordered_map<uint32_t, std::string> errors_;
  std::unordered_map<uint32_t, std::string> details_; ///< worker reports
  std::deque<uint32_t> ready_;
  /// (seq of a terminal event, task index), in seq order.
  std::deque<std::pair<uint64_t, uint32_t>> releases_;
  std::string buf_;
  std::string scratch_;
  std::vector<event_note> notes_;
  bucketed dispatch_latency_;
  /// Closed attempts of tasks that retried or were resumed, by task index.
  /// A closed attempt, kept compact (formatted only for snapshots).
  struct closed_attempt {
    int64_t started_ms = 0;
    int64_t ended_ms = 0; ///< 0: never ended (cut off by a crash)
    std::string error;
  };
  std::unordered_map<uint32_t, std::vector<closed_attempt>> history_;
  struct worker_pid {
    uint32_t attempt = 0;
    int32_t pid = 0;
    uint64_t start = 0;
  };
  /// Worker processes of running attempts (from worker_started).
  std::unordered_map<uint32_t, worker_pid> workers_;
  std::vector<std::pair<uint32_t, uint64_t>> retries_;
  /// (seq of the deadletter event, deadletter.jsonl line)
  std::deque<std::pair<uint64_t, std::string>> deadletters_;
  uint32_t waiting_ = 0; ///< tasks between a failed attempt and its retry
  std::vector<double> latencies_;
  uint64_t seq_ = 0;
  uint64_t durable_ = 0;
  uint64_t final_seq_ = 0;
  uint32_t running_ = 0;
  uint32_t open_ = 0; ///< tasks not yet terminal
  uint32_t counts_[7] = {};
  run_status status_ = run_status::queued;
  std::string summary_;
  std::string first_failed_;
  bool cancelling_ = false;
  bool expired_ = false;
  uint64_t stop_seq_ = 0;  ///< seq of the stop intent, 0: none
  run_stop loaded_stop_;   ///< the intent of a loaded log (recovery honours it)
  bool blocked_ = false;
  std::string blocked_summary_; ///< empty: "No ready queued task."
  bool adaptive_pending_ = false;
  bool adaptive_done_ = false;
  std::string stop_reason_;
};

} // namespace crew
