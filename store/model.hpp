#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

// -- statuses (inventory §1.3, §1.4) ------------------------------------------

/// Run status; terminal: blocked, completed, failed, cancelled.
enum class run_status : uint8_t {
  queued = 1,
  planning,
  running,
  blocked,
  completed,
  failed,
  cancelled,
};

/// Task status; terminal: completed, failed, cancelled, skipped.
enum class task_status : uint8_t {
  queued = 1,
  running,
  completed,
  failed,
  cancelled,
  skipped,
};

const char* to_string(run_status x) noexcept;
const char* to_string(task_status x) noexcept;

/// Parses a status name; returns false on an unknown name.
bool from_string(std::string_view str, run_status& x) noexcept;
bool from_string(std::string_view str, task_status& x) noexcept;

inline bool is_terminal(run_status x) noexcept {
  return x == run_status::blocked || x == run_status::completed
         || x == run_status::failed || x == run_status::cancelled;
}

inline bool is_terminal(task_status x) noexcept {
  return x == task_status::completed || x == task_status::failed
         || x == task_status::cancelled || x == task_status::skipped;
}

// -- stop intent --------------------------------------------------------------

/// A stop of a run that its log records before any worker is killed:
/// `crew.run.cancel_requested` (a cancel) or `crew.run.expired`
/// (`limits.maxRunMinutes`), the reason as the event's message. From that
/// event on the run only finishes the stop, across crashes too: recovery
/// ends it `cancelled` (or `failed` for an expiry) and requeues nothing. A
/// later `run.running` (an explicit `crew resume`) withdraws it.
enum class stop_kind : uint8_t { none, cancel, expire };

struct run_stop {
  stop_kind kind = stop_kind::none;
  std::string reason;
  uint64_t seq = 0; ///< seq of the intent event, 0 when none

  bool requested() const noexcept {
    return kind != stop_kind::none;
  }
};

/// The type of the event that records a stop of `kind` (not `none`).
constexpr std::string_view stop_event_type(stop_kind kind) noexcept {
  return kind == stop_kind::expire ? std::string_view{"crew.run.expired"}
                                   : std::string_view{"crew.run.cancel_requested"};
}

// -- plan: the immutable task graph of a run ----------------------------------

/// One task of a run as planned at creation (written once to plan.json).
struct planned_task {
  std::string id;      ///< `<NN>_<normalized step id>`
  std::string step_id; ///< workflow step id
  std::string role;
  std::string agent;
  std::string title;
  std::string model;                   ///< step model, may be empty
  std::string task;                    ///< step text (before `{goal}`)
  std::vector<std::string> depends_on; ///< step ids, as in the workflow
  std::vector<uint32_t> deps;          ///< indices into the plan (derived)
};

// -- mutable task and run state -----------------------------------------------

/// One attempt of a task: ISO-8601 timestamps, error empty on success.
struct attempt_record {
  std::string started_at;
  std::string ended_at;
  std::string error;
};

/// The state of one task, as rebuilt from the event log.
struct task_state {
  task_status status = task_status::queued;
  std::string started_at;
  std::string finished_at;
  std::string error;
  int32_t exit_code = 0;
  bool has_exit_code = false;
  std::vector<attempt_record> attempts;
  /// Worker process (group leader) of the running attempt, from
  /// `task.worker`; 0 when none. With its start time (clock ticks) it lets a
  /// later process kill workers orphaned by a crashed owner.
  int32_t worker_pid = 0;
  uint64_t worker_start = 0;
  /// A failed attempt waits for its retry until this unix ms (from
  /// `crew.task.retry_attempt`); 0 when no retry is pending.
  int64_t retry_due_ms = 0;
  /// What the worker reported about its last attempt, as a JSON object
  /// text (`model`, `modelAttempts`, `modelRouting`, `usage`,
  /// `jsonEvents`); empty for workers that report nothing (commands, sim).
  std::string details;
};

/// The run manifest (manifest.json, inventory §1.2) minus the task list.
struct run_manifest {
  std::string run_id;
  std::string team;
  std::string workflow;
  std::string goal;
  run_status status = run_status::queued;
  std::string workspace_mode = "single";
  std::string created_at;
  std::string updated_at;
  std::string cwd;
  std::string state_root;
  std::string artifacts_root;
  std::string tasks_path;
  std::string events_path;
  std::string summary;
  std::string runtime_mode; ///< resolved worker backend: child-process, ...
  int64_t owner_pid = 0;    ///< process executing the run, 0 when none
  uint64_t owner_start = 0; ///< that process' start time (clock ticks)
  uint64_t seq = 0;         ///< last event seq this snapshot reflects
};

} // namespace crew
