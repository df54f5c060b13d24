#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/workers/pi/model_routing.hpp" // model_attempt, model_routing
#include "runtime/workers/pi/pi_invocation.hpp" // env_lookup, process_env
#include "runtime/workers/pi/pi_stream.hpp"     // pi_usage
#include "runtime/workers/process.hpp"       // process_outcome

namespace crew {

/// One task for the pi CLI: what to ask, with which models, and where its
/// artifacts and live agent files go. Empty paths disable the matching file.
struct pi_job {
  std::string run_id;
  std::string task_id;
  std::string agent;
  std::string role;
  /// Working directory of pi; empty inherits the caller's.
  std::string cwd;
  /// The task prompt. It goes to pi's stdin (then closed), never into an
  /// argument: pi would parse a leading `-` as a flag and `@` as a file.
  std::string prompt;
  /// Written to a private 0600 file and passed with `--append-system-prompt`
  /// (or `--system-prompt` when `replace_system_prompt`); empty adds none.
  std::string system_prompt;
  bool replace_system_prompt = false;
  /// Candidate models, best first (see `model_candidates`); empty runs pi
  /// once with its default model.
  std::vector<std::string> models;
  /// Thinking level appended to each model (`with_thinking`).
  std::string thinking;
  /// Tool allow-list for `--tools`; empty keeps pi's default tools.
  std::vector<std::string> tools;
  bool inherit_skills = false;         ///< false adds `--no-skills`
  bool inherit_project_context = true; ///< false adds `--no-context-files`
  /// `artifacts/<run>/results/<task>.txt`: the final answer, written only on
  /// success (a failed run removes a stale one).
  std::string result_path;
  /// `artifacts/<run>/transcripts/<task>.jsonl`: compacted pi events,
  /// appended live across model attempts (never truncated).
  std::string transcript_path;
  /// `artifacts/<run>/logs/<task>.log`: per attempt the command, pi's stderr
  /// and a summary, then the result. Rewritten by every call.
  std::string log_path;
  /// `state/runs/<run>/agents/<task>/`: `status.json` (agent record, atomic,
  /// refreshed while pi runs), `events.jsonl` (`{seq,time,event}` compacted
  /// events, appended) and `output.log` (display lines, appended).
  std::string agent_dir;
  /// Wall-clock budget in ms for all model attempts together; 0 disables.
  uint64_t timeout_ms = 0;
  /// Response watchdog in ms: pi is terminated after this long without any
  /// stdout or stderr output; 0 disables.
  uint64_t response_timeout_ms = 0;
  /// Final drain in ms (pi-crew's `finalDrainMs`): after pi's final answer
  /// (`pi_stream::final_answer_seen`), pi has this long to exit (spawn mode)
  /// or to end the prompt (rpc mode) before it is terminated (rpc: the
  /// prompt aborted) with the answer standing; 0 disables. Unset means
  /// `final_drain_ms(env)`: `CREW_PI_FINAL_DRAIN_MS`, else 5000.
  std::optional<uint64_t> final_drain_ms;
  /// Delay in ms between SIGTERM and SIGKILL to pi's process group.
  uint64_t kill_grace_ms = 3000;
  /// Extra `KEY=VALUE` entries (crew's `CREW_*`). The depth, role and
  /// inherit variables of `pi_env` are added after them and win.
  std::vector<std::string> env;
  /// `limits.maxTaskDepth` for the depth guard (see `check_depth`).
  std::optional<uint32_t> config_max_depth;
};

/// Hooks into `run_pi_attempt`. Callbacks run on the calling thread.
struct pi_callbacks {
  /// Receives the pid (also the process group id) of each spawned pi.
  std::function<void(int pid)> on_spawn;
  /// Called for every stdout chunk of pi (unthrottled): a liveness signal.
  std::function<void()> on_activity;
  /// Once it reads true, pi's process group is terminated and no further
  /// model is tried.
  const std::atomic<bool>* cancel = nullptr;
  /// Where `PI_TEAMS_PI_BIN`, `PI_TEAMS_MOCK_CHILD_PI`, `PI_CREW_DEPTH`,
  /// `PATH` and friends are read from. The spawned pi still inherits the
  /// real environment of this process plus `pi_job::env`.
  env_lookup env = process_env();
};

/// How a pi task ended, over all its model attempts.
struct pi_result {
  bool ok = false;
  int exit_code = -1; ///< of the last attempt; -1 if pi did not exit normally
  int signal = 0;     ///< the signal that ended the last attempt, 0 if none
  std::string error;  ///< empty on success
  /// The final answer (also in `result_path` on success).
  std::string text;
  std::vector<model_attempt> model_attempts;
  model_routing routing;
  pi_usage usage;           ///< summed over every attempt
  uint64_t json_events = 0; ///< summed over every attempt
  uint64_t tool_uses = 0;   ///< `tool_execution_start` events, all attempts
  uint64_t duration_ms = 0;
  bool timed_out = false;      ///< `timeout_ms` ran out
  bool idle_timed_out = false; ///< the response watchdog killed pi
  bool cancelled = false;
  /// pi delivered its final answer but did not exit (rpc: end the prompt)
  /// within the final drain, so it was terminated; the answer stands.
  bool drained = false;

  /// Renders the task details as a JSON object: `{model?, modelAttempts,
  /// modelRouting, usage: {input, output, cacheRead, cacheWrite,
  /// totalTokens, cost, turns}, jsonEvents}`. `model` is the routed model.
  std::string details_json() const;
};

/// Runs one task with the pi CLI, blocking the calling thread:
/// 1. the depth guard (`check_depth`): when blocked, fails at once with
///    pi-crew's message and spawns nothing;
/// 2. `PI_TEAMS_MOCK_CHILD_PI`: fakes pi (`pi_mock`) without a process, its
///    output fed through the same stream handling as a real run;
/// 3. otherwise resolves pi (`pi_binary`) and runs `pi --mode json -p
///    --no-session [--model m] ...` once per model candidate, moving on only
///    while `should_try_next_model` says so.
/// Success is decided from pi's JSON events (`pi_stream::outcome`), since
/// JSON mode exits 0 even when the model call failed. A pi that produced its
/// final answer and then does not exit is terminated after the final drain
/// (`pi_job::final_drain_ms`) or by the watchdog, and counts as a success
/// with exit code 0, as in pi-crew. File errors on the live agent files
/// never fail the run; failing to write the result file does. Never throws
/// for pi failures.
pi_result run_pi_attempt(const pi_job& job, const pi_callbacks& cb = {});

// -- other execution backends (internal) ------------------------------------

/// @private One model attempt that `run_pi_attempt_with` hands to a backend
/// other than spawn mode (the warm processes of `pi_rpc_pool`). The cancel
/// flag and the time left were checked just before.
struct pi_attempt_request {
  const pi_job& job;
  const pi_command& command; ///< the resolved pi CLI
  const std::string& model;  ///< the candidate; empty means pi's default
  /// `job.env` plus the depth, role and inherit variables of `pi_env`.
  const std::vector<std::string>& child_env;
  uint64_t budget_ms; ///< left of `job.timeout_ms`; 0 means no limit
  /// The resolved `job.final_drain_ms`; 0 disables the drain.
  uint64_t final_drain_ms;
  /// A fresh stream for this attempt. Feed it through `on_stdout` only.
  const pi_stream& stream;
  /// Feeds pi's stdout (whole lines or any chunks) to the stream, the
  /// transcript, the live agent files and `on_activity`.
  std::function<void(std::string_view chunk)> on_stdout;
  /// Appends to the task log.
  std::function<void(std::string_view text)> log;
};

/// @private How a backend's attempt ended, judged like a spawned pi:
/// `process` as `run_process` reports it (`exit_code` 0 while the process
/// lives on; `drained` when the final drain ended the prompt), then the
/// stream decides success.
struct pi_attempt_report {
  process_outcome process;
  /// pi's stderr written during the attempt (the log and error tail).
  std::string stderr_text;
  /// Replaces the error of a failed attempt unless the model reported one
  /// (a failed rpc command, pi exiting in the middle of a prompt).
  std::string failure;
  /// What the response watchdog did, for its error message; empty means
  /// "process terminated as unresponsive".
  std::string watchdog_action;
};

/// @private The pi arguments of one attempt of `job` with `model` in `mode`,
/// without the system prompt file (each backend writes its own).
pi_arg_options pi_job_options(const pi_job& job, pi_output_mode mode,
                              const std::string& model);

/// @private Runs one model attempt for `run_pi_attempt_with`.
using pi_attempt_backend
    = std::function<pi_attempt_report(const pi_attempt_request&)>;

/// @private `run_pi_attempt` with every real (not mocked, not blocked) model
/// attempt run by `backend` instead of a spawned `pi --mode json`: the same
/// depth guard, mock modes, model fallback, files and result.
pi_result run_pi_attempt_with(const pi_job& job, const pi_callbacks& cb,
                              const pi_attempt_backend& backend);

} // namespace crew
