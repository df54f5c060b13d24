#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/workers/pi/pi_invocation.hpp" // env_lookup, process_env
#include "runtime/workers/pi/pi_worker.hpp"     // pi_job, pi_callbacks, pi_result

namespace crew {

/// A pool of warm `pi --mode rpc` processes shared by a run's task workers
/// (`runtime.piMode: rpc`); thread-safe. It saves pi's startup (about a
/// second of CPU) for every task but the first on each process.
///
/// Each process leads its own process group (posix_spawn) with its stdin and
/// stdout on pipes and its stderr in a file of a private temp directory,
/// which also holds the system prompt file and pi's `--session-dir` (rpc mode
/// runs without `--no-session`, whose `new_session` would write session files
/// into the task's cwd). A process serves one task at a time.
///
/// Processes are keyed by their spawn-time arguments: pi binary, cwd, system
/// prompt, tools, thinking, skills and context flags, the model (`--model`)
/// and the depth and role variables of `pi_env`. The model is part of the
/// key because pi's `set_model` would rewrite `defaultProvider`/
/// `defaultModel` in the user's `$PI_CODING_AGENT_DIR/settings.json`: a
/// fallback model gets a process of its own. `pi_job::env` (crew's per-task
/// `CREW_*` variables) only reaches a process when it is spawned, so a reused
/// process still sees the values of the task that started it.
class pi_rpc_pool {
public:
  // -- constructors, destructors, and assignment operators -------------------

  /// Keeps at most `max_processes` processes (0 counts as 1). `env` is where
  /// `PI_TEAMS_PI_BIN`, `PI_TEAMS_MOCK_CHILD_PI`, the depth variables and
  /// `PATH` are read from; it replaces `pi_callbacks::env` in `run`.
  explicit pi_rpc_pool(size_t max_processes, env_lookup env = process_env());

  pi_rpc_pool(const pi_rpc_pool&) = delete;
  pi_rpc_pool& operator=(const pi_rpc_pool&) = delete;

  /// Stops every process: closes its stdin, sends SIGTERM to its group after
  /// a grace period, then SIGKILL; reaps them all. No `run` may be active.
  ~pi_rpc_pool();

  // -- running tasks ---------------------------------------------------------

  /// Runs one task like `run_pi_attempt` (same depth guard and mock modes,
  /// same files, same `pi_result`, same fallback over `job.models`), on an
  /// idle process whose key matches the job, else on a new one (evicting the
  /// least recently used idle process of another key when the pool is full,
  /// or waiting for one to become idle). Every model attempt starts a fresh
  /// conversation (`new_session`), then sends the prompt and waits for
  /// `agent_end`. The response watchdog (`job.response_timeout_ms` without
  /// output), `job.timeout_ms` and `cb.cancel` abort the prompt, and so does
  /// the final drain (a final answer without `agent_end` within
  /// `job.final_drain_ms`), which keeps the answer as the result; a process
  /// that does not finish within 2 s after the abort, crashes or fails the
  /// protocol is killed and replaced. `cb.on_spawn` receives the pid (and
  /// process group) of the process serving the task, spawned or reused;
  /// `cb.on_activity` fires for each stdout line of the prompt.
  pi_result run(const pi_job& job, const pi_callbacks& cb = {});

  // -- properties ------------------------------------------------------------

  /// Processes started so far.
  size_t spawned() const;

  /// Processes alive now, idle or busy.
  size_t size() const;

  /// @private One pi process (pi_rpc.cpp).
  struct worker;

private:
  using clock_type = std::chrono::steady_clock;

  /// A process for `key`, marked busy; nullptr when none could be had, with
  /// `why` set to `cancelled`, `timed out` or `spawn failed: ...`.
  worker* acquire(const std::string& key, const pi_attempt_request& req,
                  const pi_callbacks& cb, clock_type::time_point deadline,
                  std::string& why, bool& fresh);

  /// Returns a healthy process to the idle set, or stops and forgets a
  /// broken one.
  void release(worker* w, bool broken);

  /// Takes `w` out of the pool (mutex held by the caller).
  std::unique_ptr<worker> detach(worker* w);

  /// Runs one model attempt of a task on `current` (replacing it as needed).
  pi_attempt_report attempt(worker*& current, const pi_attempt_request& req,
                            const pi_callbacks& cb);

  size_t max_;
  env_lookup env_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  std::vector<std::unique_ptr<worker>> workers_;
  size_t spawned_ = 0;
};

} // namespace crew
