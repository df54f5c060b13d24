#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/checkpoint.hpp"
#include "store/model.hpp"

namespace crew {

// -- streaming reader ---------------------------------------------------------

/// One parsed event line. The views point into the reader's buffers and are
/// valid only during the callback.
struct event_view {
  uint64_t seq = 0; ///< `metadata.seq`, 0 when missing
  std::string_view time;
  std::string_view type;
  std::string_view run_id;
  std::string_view task_id;  ///< empty when absent
  std::string_view message;  ///< empty when absent
  std::string_view data_raw; ///< raw JSON text of `data`, empty when absent
  size_t line = 0;           ///< 1-based line number in the file
};

/// Options of `for_each_event`.
struct read_options {
  /// Skip (but still validate) events with `seq <= since_seq`.
  uint64_t since_seq = 0;
  /// Ignore a torn final line (reported in `read_report`) instead of throwing
  /// `errc::corrupt_log`.
  bool tolerate_torn_tail = true;
  /// Start reading at this byte offset (the start of a line), with
  /// `start_line` lines before it (for line numbers in errors).
  uint64_t start_offset = 0;
  size_t start_line = 0;
};

/// What a read saw.
struct read_report {
  uint64_t events = 0;   ///< events passed to the callback
  uint64_t last_seq = 0; ///< highest seq among all valid lines
  bool torn_tail = false;
  size_t torn_line = 0; ///< 1-based line of the torn tail, 0 when none
};

/// Streams the events of the log at `path` to `fn`, in file order. A final
/// line without `\n` or that does not parse is a torn tail: ignored and
/// reported (or, without `tolerate_torn_tail`, thrown as `corrupt_log`). A
/// damaged line followed by more lines throws
/// `input_error(errc::corrupt_log, "<path>:<line>: unparsable event (…)")`.
/// A missing file throws `input_error(errc::not_found)` naming it.
read_report for_each_event(const std::filesystem::path& path,
                           const std::function<void(const event_view&)>& fn,
                           read_options opts = {});

// -- replay -------------------------------------------------------------------

/// The run and task state rebuilt from an event log.
struct replay_state {
  run_status status = run_status::queued;
  std::string summary;           ///< message of the last `run.<status>`
  /// The stop intent since the last `run.running`, if any (see `run_stop`).
  run_stop stop;
  /// Parallel to the plan, then to `added`.
  std::vector<task_state> tasks;
  /// Tasks the log's `adaptive.plan_injected` events add to the plan (in
  /// log order, without those the plan already holds). Their `deps` are
  /// not resolved: append them to the plan and call `resolve_deps`.
  std::vector<planned_task> added;
  uint64_t last_seq = 0;
  uint64_t events = 0;
  bool seq_contiguous = true; ///< seqs were exactly 1, 2, 3, …
  uint64_t first_gap_seq = 0; ///< first expected seq that was missing
  /// Inconsistencies found, e.g. "task 't3': 2 terminal events".
  std::vector<std::string> violations;
  bool torn_tail = false;
};

/// Rebuilds run and task state from the log at `events` for a run with the
/// task graph `plan` (a pure function of the file content). Event rules:
/// - `run.running|completed|failed|blocked|cancelled`: run status, summary =
///   message; `run.created` and unknown types are ignored;
/// - `crew.run.cancel_requested|expired`: the stop intent (`stop`, reason =
///   message), which a later `run.running` clears;
/// - `task.started`: running, startedAt, clears finishedAt/error, opens an
///   attempt;
/// - `task.completed`: completed, finishedAt, exitCode (from data), closes
///   the attempt;
/// - `task.failed`: failed, error = message, finishedAt, exitCode if in
///   data, closes the attempt with the error;
/// - `task.skipped|cancelled`: that status, error = message, finishedAt,
///   closes an open attempt with the error;
/// - `task.requeued`: queued, clears startedAt/finishedAt/error/exitCode;
/// - `adaptive.plan_injected`: the tasks of `data.tasks` (plan.json
///   entries) join the plan (`added`), queued.
/// Unknown task ids, more than one terminal event per task since its last
/// requeue and seq gaps become `violations`. Throws like `for_each_event`.
replay_state replay_log(const std::filesystem::path& events,
                        const std::vector<planned_task>& plan);

/// What `replay_tail` saw.
struct tail_report {
  uint64_t events = 0;     ///< events replayed
  uint64_t valid_end = 0;  ///< byte offset past the last valid line
  bool torn_tail = false;
  /// The tail holds an `adaptive.plan_injected` event: the checkpoint's
  /// plan is not the run's plan any more, replay the whole log instead.
  bool plan_changed = false;
  std::vector<std::string> violations; ///< as in `replay_state`
  /// The `crew.task.deadletter` events of the tail.
  struct deadletter_event {
    std::string task_id;
    std::string time;
    std::string data; ///< raw JSON of `data`
  };
  std::vector<deadletter_event> deadletters;
};

/// Replays the events of the log at `events` from byte `offset` (just past
/// the line of the event `ck.seq`) onto `ck`, with the rules of
/// `replay_log`: afterwards `ck` describes the whole log. Only the tasks
/// the tail names are touched, so the cost follows the tail, not the run.
/// Throws like `for_each_event` (line numbers count `ck.seq` lines before
/// `offset`).
tail_report replay_tail(const std::filesystem::path& events, uint64_t offset,
                        const std::vector<planned_task>& plan,
                        run_checkpoint& ck);

/// Task id -> plan index (UINT32_MAX: not resolved).
using task_id_map = std::unordered_map<std::string, uint32_t>;

/// Like `replay_tail` with a plan, where `resolve` sets the plan index of
/// each task id the tail names (ids left unresolved are unknown tasks), so
/// the plan need not be in memory yet (see `resolve_plan_bin_ids`).
tail_report replay_tail(const std::filesystem::path& events, uint64_t offset,
                        const std::function<void(task_id_map&)>& resolve,
                        run_checkpoint& ck);

} // namespace crew
