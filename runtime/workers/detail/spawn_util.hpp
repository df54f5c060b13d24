#pragma once

// Internal to runtime/: POSIX plumbing shared by run_process (one worker
// process), run_pi_attempt and pi_rpc_pool (long-lived pi processes).

#include <signal.h>
#include <spawn.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 29)
#define CREW_SPAWN_CHDIR 1 // posix_spawn_file_actions_addchdir_np
#else
#define CREW_SPAWN_CHDIR 0
#endif

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

/// Initialises `actions` for a worker process: `in`, `out` and `err` become
/// its stdin, stdout and stderr, every other descriptor is closed (glibc >=
/// 2.34), and with `CREW_SPAWN_CHDIR` it starts in `chdir_to` unless that is
/// null. The caller destroys it.
void init_file_actions(posix_spawn_file_actions_t& actions, int in, int out,
                       int err, const char* chdir_to);

/// Puts the shell wrapper `/bin/sh -c 'cd -- "$1" && shift && exec "$@"'`
/// in front of `argv`, which then runs in `dir` with the same pid and its
/// arguments untouched (where posix_spawn cannot change directory).
void prepend_cd_wrapper(std::vector<std::string>& argv, const std::string& dir);

/// Checks that `cwd` names a directory; returns its absolute path, or empty
/// with `error` set ("working directory '<cwd>': <reason>").
std::string checked_cwd(const std::string& cwd, std::string& error);

/// Creates a private directory (mkdtemp, 0700) named `<prefix>XXXXXX` in the
/// temp directory; empty with `error` set on failure.
std::filesystem::path make_private_dir(std::string_view prefix,
                                       std::string& error);

/// The null-terminated array of pointers into `strings` that exec wants
/// (valid while `strings` is unchanged).
std::vector<char*> c_strings(std::vector<std::string>& strings);

/// Builds `environ` with the `extra` KEY=VALUE entries replacing equal keys
/// (the last of duplicates wins). False with `error` set on a malformed entry.
bool build_env(const std::vector<std::string>& extra,
               std::vector<std::string>& out, std::string& error);

/// `arg` quoted for a POSIX shell (for logs that show a command line).
std::string shell_quote(std::string_view arg);

/// `argv` as a shell command line, each argument `shell_quote`d (for logs).
std::string shell_command(const std::vector<std::string>& argv);

} // namespace crew::detail
