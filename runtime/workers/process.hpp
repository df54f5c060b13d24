#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// Describes one worker process: a shell command line or an argument vector,
/// plus its stdio, working directory, environment and time limits.
struct process_spec {
  /// Run as `/bin/sh -c <command_line>` (when `argv` is empty).
  std::string command_line;
  /// When non-empty, the program and its arguments, run directly without a
  /// shell (`posix_spawnp`): every argument reaches the program verbatim,
  /// even one starting with `-` or holding shell metacharacters. `argv[0]`
  /// is looked up on this process's `PATH` unless it contains a `/`; a
  /// relative path is resolved against this process's working directory,
  /// not `cwd`. Takes precedence over `command_line`.
  std::vector<std::string> argv;
  /// Working directory; empty inherits the caller's.
  std::string cwd;
  /// Extra `KEY=VALUE` entries; they override or extend `environ`.
  std::vector<std::string> env;
  /// Written to the child's stdin, which is closed afterwards.
  std::string stdin_data;
  /// Capture files (created or truncated); empty discards the stream.
  std::string stdout_path;
  std::string stderr_path;
  /// Wall-clock limit in ms; 0 disables. On expiry the process group gets
  /// SIGTERM, then SIGKILL after `kill_grace_ms`.
  uint64_t timeout_ms = 0;
  /// Response watchdog in ms; 0 disables. When the process writes nothing
  /// to stdout or stderr for this long, the process group gets SIGTERM, then
  /// SIGKILL after `kill_grace_ms`. The clock starts at spawn.
  uint64_t idle_timeout_ms = 0;
  /// Final drain in ms (pi-crew's `finalDrainMs`); 0 disables. Once
  /// `process_callbacks::answered` reports the final answer, the process has
  /// this long to exit on its own; then the group gets SIGTERM, SIGKILL
  /// after `kill_grace_ms`, and the outcome is a success (`drained`).
  uint64_t final_drain_ms = 0;
  /// Delay in ms between SIGTERM and SIGKILL on timeout, watchdog, drain or
  /// cancel.
  uint64_t kill_grace_ms = 3000;
};

/// Reports how a worker process ended.
struct process_outcome {
  bool spawned = false;
  int exit_code = -1; ///< -1 unless the process exited normally
  int signal = 0;     ///< the signal that killed the leader, 0 if none
  bool timed_out = false;
  bool idle_timed_out = false; ///< the response watchdog fired
  bool cancelled = false;      ///< `process_callbacks::cancel` fired
  /// The final drain ran out and terminated the process: it had delivered
  /// its answer, so this counts as a success whatever the exit status.
  bool drained = false;
  /// Human text, empty on success: "exit code 3", "killed by signal 9
  /// (SIGKILL)", "timed out after 500 ms", "no output for 500 ms (response
  /// watchdog)", "cancelled", "spawn failed: ...".
  std::string error;
  /// The last <= 2 KiB of stderr, cut on a character boundary, ill-formed
  /// UTF-8 replaced by U+FFFD.
  std::string stderr_tail;
  uint64_t stdout_bytes = 0;
  uint64_t stderr_bytes = 0;
  uint64_t duration_ms = 0; ///< from spawn until the pipes are closed

  bool success() const noexcept {
    return spawned && !timed_out && !idle_timed_out && !cancelled
           && (drained || (signal == 0 && exit_code == 0));
  }
};

/// Hooks into a running worker process. Callbacks run on the calling thread.
struct process_callbacks {
  /// Receives the pid (which is also the process group id) after spawning.
  std::function<void(int pid)> on_spawn;
  /// Heartbeat: called at most every 250 ms while output flows.
  std::function<void()> on_output;
  /// Receives stdout data as it arrives, in order, in chunks of arbitrary
  /// size (a line may span chunks). Runs in addition to `stdout_path`.
  std::function<void(std::string_view chunk)> on_stdout;
  /// The same for stderr (in addition to `stderr_path`).
  std::function<void(std::string_view chunk)> on_stderr;
  /// Asked after stdout data arrived, until it returns true: whether the
  /// process delivered its final answer, which starts the final drain
  /// (`process_spec::final_drain_ms`). Not called while the drain is off.
  /// Once the drain ran out, `on_stdout` gets nothing more (the capture file
  /// still does).
  std::function<bool()> answered;
  /// Once it reads true, the process group gets SIGTERM, SIGKILL after grace.
  const std::atomic<bool>* cancel = nullptr;
};

/// Runs one worker process to completion, blocking the calling thread (meant
/// for a dedicated thread). The worker leads its own process group; timeout,
/// response watchdog, final drain and cancel terminate the whole group. Never throws for
/// process failures: they are reported in the outcome, spawn failures with
/// `spawned == false`.
process_outcome run_process(const process_spec& spec,
                            const process_callbacks& callbacks = {});

/// Sends `sig` to the process group `pgid`, ignoring a group that is gone.
void kill_process_group(int pgid, int sig) noexcept;

/// Checks whether `pid` names a live process: `kill(pid, 0)` succeeds or
/// fails with EPERM. A zombie (exited, not yet reaped) counts as dead.
bool process_alive(int pid) noexcept;

/// Returns the start time of `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or 0 if unknown. Together with the pid it identifies
/// a process across pid reuse.
uint64_t process_start_time(int pid) noexcept;

/// Returns the abbreviated name of a signal ("SIGKILL"), or "SIG<n>".
std::string signal_name(int sig);

} // namespace crew
