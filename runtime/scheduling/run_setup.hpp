#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/scheduling/run_engine.hpp"
#include "runtime/workers/sim.hpp"
#include "runtime/workers/worktree.hpp"
#include "store/model.hpp"
#include "store/event_log.hpp"
#include "store/paths.hpp"

namespace crew {

class pi_rpc_pool;
struct adaptive_support;

/// Which kind of worker executes a run's attempts.
enum class backend_kind : uint8_t {
  command = 1, ///< agent `command:` lines, real processes
  scaffold,    ///< prompts and placeholder results, no process
  sim,         ///< simulated workers (load tests)
};

const char* to_string(backend_kind x) noexcept;

/// Everything a run actor needs to execute (or resume) one run. Built by
/// the runtime from resources and config; immutable once the actor starts.
struct run_setup {
  run_manifest manifest;
  run_paths paths;
  std::vector<planned_task> plan;
  /// resume, recover: the task states at the end of the log
  run_checkpoint checkpoint;
  /// The prefix of the log a replay validated (the journal skips it).
  log_position trusted_log;
  /// The seq of the checkpoint.bin that bounded the replay; 0: full replay.
  uint64_t checkpoint_seq = 0;
  bool resume = false;
  bool recover = false; ///< crash recovery: requeue interrupted attempts only
  engine_options engine;
  backend_kind backend = backend_kind::command;
  /// Per task (command backend): the shell command line; empty when the
  /// agent has none (then pi runs it, see `pi`).
  std::vector<std::string> commands;
  std::vector<uint64_t> timeouts_ms; ///< per task, 0 = none
  /// Per task (agents without a command): how to run pi.
  struct pi_agent {
    std::vector<std::string> models; ///< candidates; empty: pi's default
    std::string thinking;
    std::vector<std::string> tools;
    std::string system_prompt;
    bool replace_system_prompt = false;
  };
  std::vector<pi_agent> pi;
  uint64_t pi_response_timeout_ms = 300000; ///< pi-crew's responseTimeoutMs
  /// `runtime.piMode: rpc`: warm pi processes shared by the run's attempts
  /// (stopped when the last holder of the setup lets go); null in spawn mode.
  std::shared_ptr<pi_rpc_pool> pi_pool;
  uint32_t max_task_depth = 0;              ///< limits.maxTaskDepth, 0: unset
  /// `workspaceMode: worktree`: each task runs in its own git worktree and
  /// branch under `<crew root>/worktrees/<run>/<task>`.
  bool worktrees = false;
  worktree_options worktree;
  sim_params sim;
  uint64_t sim_hang_timeout_ms = 1000; ///< a hung sim attempt fails after this
  uint64_t snapshot_interval_ms = 1000; ///< tasks.json + manifest.json
  uint64_t checkpoint_interval_ms = 1000; ///< checkpoint.bin
  uint64_t max_run_ms = 0;             ///< limits.maxRunMinutes, 0 = none
  uint64_t kill_grace_ms = 3000;
  /// Consecutive dead heartbeat ticks before an attempt is killed and
  /// deadlettered (reliability.deadletterThreshold).
  uint32_t deadletter_threshold = 3;
  bool write_snapshots = true;
  fsync_policy fsync = fsync_policy::batch; ///< also for snapshot writes
  /// Workflow `implementation`: turns the planner's output into tasks
  /// (engine.adaptive_assess is the planner's index); null otherwise.
  std::shared_ptr<const adaptive_support> adaptive;
  /// Keeps the run lock (run.lock) while the setup lives.
  std::shared_ptr<void> lock;
};

using run_setup_ptr = std::shared_ptr<const run_setup>;

} // namespace crew
