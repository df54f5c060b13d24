#pragma once

// Internal to runtime/: POSIX plumbing shared by run_process (one worker
// process) and pi_rpc_pool (long-lived pi processes).

#include <signal.h>
#include <spawn.h>

#include <string>
#include <string_view>
#include <vector>

namespace crew::detail {

/// Blocks SIGPIPE on this thread while we write to a child's stdin, so a
/// child that exits without reading turns into EPIPE instead of killing us.
/// A SIGPIPE raised by our own write is pending on this thread only and is
/// consumed before the old mask comes back.
class sigpipe_guard {
public:
  sigpipe_guard();
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;
  ~sigpipe_guard();

private:
  sigset_t old_;
  bool was_blocked_ = false;
};

/// Creates a pipe whose ends are close-on-exec and numbered >= 3, so that
/// dup2 onto 0/1/2 in the child always yields a fresh, inheritable fd.
/// Returns false with `err` set on failure.
bool make_pipe(int (&fds)[2], int& err);

void set_nonblocking(int fd);

/// Initialises `attr` for a worker process: its own process group (so that
/// it can be killed as a group), an empty signal mask and every signal at
/// its default disposition. The caller destroys it.
void init_spawn_attributes(posix_spawnattr_t& attr);

/// Builds `environ` with the `extra` KEY=VALUE entries replacing equal keys
/// (the last of duplicates wins). False with `error` set on a malformed entry.
bool build_env(const std::vector<std::string>& extra,
               std::vector<std::string>& out, std::string& error);

/// `arg` quoted for a POSIX shell (for logs that show a command line).
std::string shell_quote(std::string_view arg);

} // namespace crew::detail
