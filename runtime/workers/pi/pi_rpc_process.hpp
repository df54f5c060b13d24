#pragma once

// Internal to workers/pi/: one `pi --mode rpc` process of pi_rpc_pool, how
// it is started and stopped, and its JSON lines on stdin and stdout.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include "runtime/workers/pi/pi_rpc.hpp"

namespace crew {

/// One pi process of the pool, with the state of its pipes.
struct pi_rpc_pool::worker {
  worker() = default;
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;
  /// Closes the descriptors and removes `dir`; the process must be reaped.
  ~worker();

  std::string key;
  std::string model; ///< the `--model` argument (with thinking); empty if none
  int pid = -1;      ///< also the process group id
  int in = -1;       ///< pi's stdin, written by us (non-blocking)
  int out = -1;      ///< pi's stdout (non-blocking)
  int err = -1;      ///< pi's stderr file, opened for reading
  std::filesystem::path dir; ///< private: system prompt, sessions, stderr
  std::string buffer;        ///< stdout after the last newline handled
  std::string pending;       ///< not yet written to stdin
  bool eof = false;          ///< stdout closed
  bool reaped = false;
  int status = 0; ///< wait status once reaped
  uint64_t next_id = 0;
  uint64_t prompts = 0;
  bool busy = false; ///< guarded by the pool's mutex
  clock_type::time_point last_used;
};

namespace pi_rpc {

using worker = pi_rpc_pool::worker;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// How often a wait wakes up to look at the cancel flag.
inline constexpr auto poll_slice = milliseconds{50};

// -- starting and stopping ----------------------------------------------------

/// Starts `pi --mode rpc` for `w` (its key already set) in a new private
/// directory; false with `error` set.
bool spawn_worker(worker& w, const pi_attempt_request& req, std::string& error);

/// Whether an idle process can take a task: it has not exited and its
/// stdout is open. Output it produced while idle is dropped.
bool usable(worker& w);

/// Waits until every worker of `ws` has exited or `until` passes, reading
/// and discarding their output so that none blocks on a full pipe.
void wait_exits(const std::vector<worker*>& ws, clock_type::time_point until);

/// Stops processes gracefully and together: closes their stdin (pi exits
/// 0 at once when idle), SIGTERM to each group still running after
/// `close_wait`, SIGKILL after `term_wait`, then reaps them.
void stop_workers(const std::vector<worker*>& ws, milliseconds close_wait,
                  milliseconds term_wait);

/// Kills one process at once (SIGTERM, SIGKILL after `grace`).
void kill_worker(worker& w, milliseconds grace);

/// "exit code 3" or "killed by signal 9 (SIGKILL)".
std::string describe_status(int status);

// -- stderr (a file) ----------------------------------------------------------

/// The size of the file `fd`; 0 if unknown.
off_t file_size(int fd);

/// The bytes of `fd` from `from` to its end, at most the last `limit`.
std::string read_from(int fd, off_t from, size_t limit);

// -- JSON lines on stdin and stdout -------------------------------------------

/// Queues `command` as one line for pi's stdin and writes what it can
/// without blocking.
void send_line(worker& w, const nlohmann::json& command);

/// What one `step` saw.
struct step_result {
  bool done = false;   ///< `on_line` returned true
  bool output = false; ///< stdout produced data
  bool eof = false;    ///< stdout is closed and every line was handled
};

/// Writes pending input and waits at most `wait` for stdout, then appends
/// what it has to `w.buffer` (`output`: whether anything came). False when
/// stdout had nothing to report.
bool read_stdout(worker& w, milliseconds wait, bool& output);

/// Hands each complete line of `w.buffer` to `on_line` until it returns
/// true, which this returns; the rest stays buffered.
template <class OnLine>
bool hand_lines(worker& w, OnLine& on_line) {
  bool done = false;
  size_t begin = 0;
  for (auto nl = w.buffer.find('\n'); nl != std::string::npos;
       nl = w.buffer.find('\n', begin)) {
    std::string_view line{w.buffer.data() + begin, nl - begin};
    begin = nl + 1;
    if (!line.empty() && on_line(line)) {
      done = true;
      break;
    }
  }
  w.buffer.erase(0, begin);
  return done;
}

/// Hands each complete line of stdout to `on_line` until it returns true
/// (the rest stays buffered), waiting at most `wait` for more output.
template <class OnLine>
step_result step(worker& w, milliseconds wait, OnLine&& on_line) {
  step_result r;
  r.done = hand_lines(w, on_line);
  if (r.done)
    return r;
  if (w.eof || w.out < 0) {
    if (!w.buffer.empty()) {
      // A last line without a newline.
      std::string last;
      last.swap(w.buffer);
      r.done = on_line(std::string_view{last});
    }
    r.eof = !r.done;
    return r;
  }
  if (read_stdout(w, wait, r.output))
    r.done = hand_lines(w, on_line);
  return r;
}

} // namespace pi_rpc

} // namespace crew
