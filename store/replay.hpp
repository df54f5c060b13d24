#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

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
  std::vector<task_state> tasks; ///< parallel to the plan
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
/// - `task.started`: running, startedAt, clears finishedAt/error, opens an
///   attempt;
/// - `task.completed`: completed, finishedAt, exitCode (from data), closes
///   the attempt;
/// - `task.failed`: failed, error = message, finishedAt, exitCode if in
///   data, closes the attempt with the error;
/// - `task.skipped|cancelled`: that status, error = message, finishedAt,
///   closes an open attempt with the error;
/// - `task.requeued`: queued, clears startedAt/finishedAt/error/exitCode.
/// Unknown task ids, more than one terminal event per task since its last
/// requeue and seq gaps become `violations`. Throws like `for_each_event`.
replay_state replay_log(const std::filesystem::path& events,
                        const std::vector<planned_task>& plan);

} // namespace crew
