#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/model.hpp"
#include "store/paths.hpp"

namespace crew {

// Binary caches that bound recovery: `plan.bin` (the immutable task graph,
// written once next to plan.json) and `checkpoint.bin` (the compact state of
// every task at a durable seq, rewritten with each snapshot). Both are
// caches of plan.json and events.jsonl: a missing, stale or damaged file is
// ignored and the slow path (parse plan.json, replay the whole log) is taken.

// -- plan.bin -----------------------------------------------------------------

/// Renders `plan` (with its resolved `deps`) as `plan.bin`. `plan_json_size`
/// is the byte size of the plan.json it mirrors: a later reader checks it.
std::string plan_bin(const std::vector<planned_task>& plan,
                     uint64_t plan_json_size);

/// Reads `plan.bin` at `path` if it mirrors a plan.json of `plan_json_size`
/// bytes; nullopt when missing, of another version, damaged or stale.
std::optional<std::vector<planned_task>>
read_plan_bin(const std::filesystem::path& path, uint64_t plan_json_size);

/// Sets the plan index of every id in `ids` that names a task of the
/// plan.bin at `path`, reading only the ids (no plan is built). False when
/// plan.bin is missing, damaged or does not mirror a plan.json of
/// `plan_json_size` bytes.
bool resolve_plan_bin_ids(const std::filesystem::path& path,
                          uint64_t plan_json_size,
                          std::unordered_map<std::string, uint32_t>& ids);

/// Writes plan.json and its binary mirror plan.bin (each atomically; with
/// `durable`, fsync'd), plan.bin last: a crash in between leaves a stale
/// plan.bin, which readers ignore.
void write_plan(const run_paths& paths, const std::vector<planned_task>& plan,
                bool durable = true);

/// The plan of a run: from plan.bin when it mirrors plan.json, else parsed
/// from plan.json (and plan.bin written for the next time, best effort).
/// Throws like `parse_plan` and `read_file`.
std::vector<planned_task> load_plan(const run_paths& paths);

// -- checkpoint.bin -----------------------------------------------------------

/// One task at a checkpoint, in the run engine's units (unix ms).
struct task_checkpoint {
  task_status status = task_status::queued;
  bool has_exit_code = false;
  bool waiting = false;    ///< a failed attempt waits for its retry
  uint32_t attempts = 0;   ///< attempts started so far
  int32_t exit_code = 0;
  int32_t worker_pid = 0;  ///< worker of the running attempt, 0 if none
  uint64_t worker_start = 0;
  int64_t started_ms = 0;  ///< last task.started, 0 if none
  int64_t finished_ms = 0; ///< terminal event, 0 if none
  int64_t retry_due_ms = 0; ///< when `waiting`: the retry's due time
};

/// A finished attempt that the task's own fields cannot express (every
/// attempt but the last one).
struct attempt_checkpoint {
  int64_t started_ms = 0;
  int64_t ended_ms = 0; ///< 0: never ended (cut off by a crash)
  std::string error;
};

/// The state of a run after the event with `seq`, compact enough that a
/// 500,000-task run loads in tens of milliseconds.
struct run_checkpoint {
  uint64_t seq = 0;
  run_status status = run_status::queued;
  std::string summary;
  run_stop stop; ///< a stop the log asks for (see `run_stop`)
  std::vector<task_checkpoint> tasks; ///< parallel to the plan
  /// Sparse, ascending by task index: the task's error text.
  std::vector<std::pair<uint32_t, std::string>> errors;
  /// Sparse, ascending by task index: attempts before the task's last one.
  std::vector<std::pair<uint32_t, std::vector<attempt_checkpoint>>> history;
  /// Sparse, ascending by task index: the worker's report (task_state::details).
  std::vector<std::pair<uint32_t, std::string>> details;
};

/// Renders `ck` as `checkpoint.bin`.
std::string checkpoint_bin(const run_checkpoint& ck);

/// Reads `checkpoint.bin`; nullopt when missing, of another version or
/// damaged. The caller checks `tasks.size()` against its plan.
std::optional<run_checkpoint> read_checkpoint(const std::filesystem::path& path);

/// Builds a checkpoint from replayed task states (`seq`, status and summary
/// are left for the caller).
run_checkpoint make_checkpoint(const std::vector<task_state>& states);

/// The task state of task `i` of `ck`, as a replay would have rebuilt it.
task_state checkpoint_task_state(const run_checkpoint& ck, uint32_t i);

/// Sets task `i` of `ck` from a replayed state (the inverse of
/// `checkpoint_task_state`).
void set_checkpoint_task(run_checkpoint& ck, uint32_t i, const task_state& st);

/// The error text of task `i`, empty when none.
std::string_view checkpoint_error(const run_checkpoint& ck, uint32_t i);

// -- positions in the log -----------------------------------------------------

/// The byte offset just past the line of the event with `seq` in the log at
/// `events` (found by bisection on the seqs, which grow with the offset), or
/// nullopt when no complete line carries that seq.
std::optional<uint64_t> find_seq_end(const std::filesystem::path& events,
                                     uint64_t seq);

} // namespace crew
