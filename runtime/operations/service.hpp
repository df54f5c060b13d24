#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "config/resources.hpp"
#include "config/validate.hpp"
#include "observability/metrics.hpp"
#include "runtime/scheduling/concurrency.hpp"
#include "runtime/supervision/node_options.hpp"
#include "runtime/scheduling/planning.hpp"
#include "runtime/scheduling/run_setup.hpp"
#include "store/replay.hpp"

namespace crew {

// The operations behind the CLI and the embedding API, in plain C++: load a
// project, plan, create, resume, inspect and cancel runs. Bad input throws
// input_error *before* anything on disk changes.

/// A project root with its merged config and discovered resources.
struct project_context {
  std::filesystem::path project_root;
  std::filesystem::path crew_root; ///< <project_root>/.crew
  crew_config config;
  resource_set resources;
};

/// Loads config (user < project < `overrides`) and resources for `cwd`.
project_context load_project(const std::filesystem::path& cwd,
                             const std::vector<std::string>& overrides);

/// A validated task graph, not yet on disk.
struct planned_run {
  team_def team;
  workflow_def workflow;
  std::vector<planned_task> plan;
  concurrency_decision concurrency;
  std::vector<validation_issue> warnings;
};

/// Resolves team and workflow (empty workflow: the team's default, else
/// `default`), validates them and builds the plan. Throws input_error naming
/// the unknown or invalid resource.
planned_run plan_run(const project_context& ctx, std::string_view team,
                     std::string_view workflow);

/// Creates the run on disk (plan.json, manifest.json, tasks.json, goal.md,
/// events.jsonl with run.created) and returns what the run actor needs. The
/// returned setup holds the run lock until it is destroyed.
run_setup_ptr prepare_run(const project_context& ctx, const planned_run& pr,
                          const std::string& goal);

/// How prepare_resume treats the run's current state.
enum class resume_mode : uint8_t {
  resume = 1,   ///< requeue every task that did not complete
  start_queued, ///< start a created, never started run (`run --async`)
  recover,      ///< an interrupted run: requeue its interrupted attempts
};

/// Prepares `run_id` to run (again): takes the run lock, then replays its
/// log; the run actor requeues every task that did not complete. Workers
/// orphaned by a dead owner are killed first. Throws input_error if the run
/// is unknown, owned by a live process, has nothing left to do, or (for
/// `start_queued`) is no longer queued.
run_setup_ptr prepare_resume(const project_context& ctx, std::string_view run_id,
                             resume_mode mode = resume_mode::resume);

/// Passes the run lock held by `setup` to process `pid` (it adopts it in
/// prepare_resume): no other process can take the run in between.
void hand_over_run_lock(const run_setup& setup, int pid);

/// A run as found on disk: manifest, plan and the replayed log.
struct run_view {
  run_manifest manifest;
  std::vector<planned_task> plan;
  replay_state replay;
  bool owner_alive = false; ///< a live process executes it now
  int64_t owner_pid = 0;
};

/// Loads a run for inspection; never writes. Throws input_error(not_found)
/// for an unknown id and input_error for a path-like one.
run_view load_run(const std::filesystem::path& crew_root, std::string_view run_id);

enum class cancel_outcome : uint8_t {
  requested = 1,    ///< the owning process was asked and confirmed
  cancelled_offline,///< no live owner: cancelled directly in the log
  already_terminal, ///< nothing to do
  timed_out,        ///< the owner did not confirm within the wait
};

/// Cancels a run: asks the live owner (which kills its workers) and waits up
/// to `wait_ms` for the cancelled status, or cancels an ownerless run
/// directly in its log.
cancel_outcome cancel_run(const std::filesystem::path& crew_root,
                          std::string_view run_id, uint64_t wait_ms = 30000);

/// The entries of a run's deadletter.jsonl, in file order. Throws
/// input_error naming the file and line of an unparsable entry.
std::vector<nlohmann::json> list_deadletters(const std::filesystem::path& crew_root,
                                             std::string_view run_id);

enum class deadletter_outcome : uint8_t {
  written = 1, ///< the entry is in deadletter.jsonl
  timed_out,   ///< the owning process did not act within the wait
};

/// Deadletters task `task_id` of a run by hand (reason `manual`): through
/// the owning process if one is alive (it stops a running attempt), else
/// directly in the log (a task that had not finished fails). Throws
/// input_error for an unknown run or task.
deadletter_outcome deadletter_task(const std::filesystem::path& crew_root,
                                   std::string_view run_id,
                                   std::string_view task_id,
                                   uint64_t wait_ms = 10000);

/// The recovery plan of an interrupted run (status running, owner dead).
struct recovery_plan {
  std::string run_id;
  std::vector<std::string> resumable_tasks; ///< attempts cut off by the crash
  std::vector<std::string> preserved_tasks; ///< already terminal: kept
  uint64_t last_event_seq = 0;
};

/// Finds the interrupted runs under `crew_root` (all of them, or those in
/// `run_ids`; a named run that is unknown or not interrupted is an
/// input_error naming it).
std::vector<recovery_plan> find_interrupted(const std::filesystem::path& crew_root,
                                            const std::vector<std::string>& run_ids);

/// Declines the recovery of an interrupted run: its unfinished tasks and the
/// run end `cancelled` with reason `interrupted-not-resumed`
/// (`crew.run.recovery_declined`); orphaned workers are killed.
void decline_recovery(const std::filesystem::path& crew_root, std::string_view run_id);

/// Options of `crew loadtest`.
struct loadtest_options {
  uint32_t tasks = 10000;
  graph_shape shape = graph_shape::fanout;
  uint32_t concurrency = 256;
  double fail_rate = 0, hang_rate = 0, crash_rate = 0;
  double latency_ms = 0;
  uint64_t seed = 1;
  fsync_policy fsync = fsync_policy::batch;
  uint64_t hang_timeout_ms = 200;
  uint32_t retry_attempts = 1; ///< > 1: retries on, with this many attempts
  uint64_t backoff_ms = 1;     ///< first retry delay (exponential, jittered)
};

/// Creates a synthetic sim run under `crew_root` (no resources involved).
run_setup_ptr prepare_loadtest(const std::filesystem::path& crew_root,
                               const loadtest_options& opts);

/// The node settings of a project: fsync policy, metric sink directory and
/// interval, OTLP export. Throws input_error naming `otlp.endpoint` when
/// `otlp.enabled` is set without one.
node_options node_options_for(const project_context& ctx);

/// Derives the metric catalogue from the persisted event logs of every run
/// under `crew_root` (what `crew metrics` shows when no node serves it).
std::vector<metric_family> metrics_from_logs(const std::filesystem::path& crew_root);

/// The store's fsync policy for a config value.
fsync_policy to_policy(fsync_mode mode) noexcept;

/// The crew root (`<project>/.crew`) for a --cwd argument.
std::filesystem::path crew_root_for(const std::filesystem::path& cwd);

} // namespace crew
