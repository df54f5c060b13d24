#include "runtime/workers/process.hpp"

#include "runtime/workers/detail/spawn_util.hpp"
#include "store/utf8.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

namespace crew {

namespace {

using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t stderr_tail_max = 2048;
constexpr size_t io_chunk = 64 * 1024;
// Without a pidfd (or with a cancel flag to watch) the loop wakes at least
// this often; otherwise it sleeps until I/O, the exit or the next deadline.
constexpr auto poll_interval = milliseconds{100};
constexpr auto heartbeat_interval = milliseconds{250};
// Grandchildren may hold the pipes open after the leader exits.
constexpr auto drain_limit = milliseconds{1000};

uint64_t elapsed_ms(clock_type::time_point since) {
  auto d = clock_type::now() - since;
  return static_cast<uint64_t>(
      std::chrono::duration_cast<milliseconds>(d).count());
}

std::string errno_text(int err) {
  return std::strerror(err);
}

/// Owns a file descriptor.
class unique_fd {
public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {
    // nop
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }

  explicit operator bool() const noexcept { return fd_ >= 0; }

  void reset(int fd = -1) noexcept {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = fd;
  }

private:
  int fd_ = -1;
};

/// Kills and reaps a spawned child if we leave early (e.g. a callback threw).
struct child_guard {
  pid_t pid = -1;
  bool reaped = false;
  ~child_guard() {
    if (pid > 0 && !reaped) {
      kill_process_group(pid, SIGKILL);
      int status = 0;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        // nop: retry
      }
    }
  }
};

/// A descriptor that becomes readable when `pid` exits (Linux >= 5.3), or
/// -1: then the exit is found by polling `waitpid`.
int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); // O_CLOEXEC
#else
  (void) pid;
  return -1;
#endif
}

/// `detail::make_pipe` into owned descriptors.
bool make_pipe(unique_fd& read_end, unique_fd& write_end, int& err) {
  int fds[2];
  if (!detail::make_pipe(fds, err))
    return false;
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  return true;
}

/// One captured output stream: the pipe plus its optional capture file.
struct output_stream {
  unique_fd pipe;
  unique_fd file;
  uint64_t bytes = 0;
  bool keep_tail = false;
  std::string tail;
  /// Receives each chunk after it went to the file; may be empty.
  const std::function<void(std::string_view)>* sink = nullptr;

  /// Reads what is available; returns false on EOF or a hard error.
  bool read_some(char* buf, size_t size, bool& got_data) {
    for (;;) {
      auto n = ::read(pipe.get(), buf, size);
      if (n > 0) {
        got_data = true;
        bytes += static_cast<uint64_t>(n);
        if (file)
          write_all(buf, static_cast<size_t>(n));
        if (keep_tail) {
          tail.append(buf, static_cast<size_t>(n));
          if (tail.size() > 2 * stderr_tail_max)
            tail.erase(0, utf8_suffix_start(tail, stderr_tail_max));
        }
        if (sink != nullptr && *sink)
          (*sink)(std::string_view{buf, static_cast<size_t>(n)});
        continue;
      }
      if (n == 0)
        return false;
      if (errno == EINTR)
        continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
  }

  void write_all(const char* data, size_t size) {
    while (size > 0) {
      auto n = ::write(file.get(), data, size);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        // A full disk must not stall the child: keep draining the pipe.
        file.reset();
        return;
      }
      data += n;
      size -= static_cast<size_t>(n);
    }
  }
};

bool open_capture(const std::string& path, unique_fd& fd, std::string& error) {
  if (path.empty())
    return true;
  int raw
      = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (raw < 0) {
    error = "cannot open output file '" + path + "': " + errno_text(errno);
    return false;
  }
  fd.reset(raw);
  return true;
}

process_outcome spawn_failure(std::string what) {
  process_outcome out;
  out.error = "spawn failed: " + std::move(what);
  return out;
}

/// Checks that `cwd` names a directory; returns its absolute path or sets
/// `error`.
std::string checked_cwd(const std::string& cwd, std::string& error) {
  std::error_code ec;
  auto dir = std::filesystem::absolute(cwd, ec);
  struct stat st;
  int stat_err = ec ? ENOENT : 0;
  if (stat_err == 0 && ::stat(dir.c_str(), &st) != 0)
    stat_err = errno;
  else if (stat_err == 0 && !S_ISDIR(st.st_mode))
    stat_err = ENOTDIR;
  if (stat_err != 0) {
    error = "working directory '" + cwd + "': " + errno_text(stat_err);
    return {};
  }
  return dir.string();
}

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 29)
#define CREW_SPAWN_CHDIR 1 // posix_spawn_file_actions_addchdir_np
#else
#define CREW_SPAWN_CHDIR 0
#endif

} // namespace

// -- helpers ------------------------------------------------------------------

std::string signal_name(int sig) {
  switch (sig) {
    case SIGHUP:
      return "SIGHUP";
    case SIGINT:
      return "SIGINT";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGILL:
      return "SIGILL";
    case SIGTRAP:
      return "SIGTRAP";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGKILL:
      return "SIGKILL";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGPIPE:
      return "SIGPIPE";
    case SIGALRM:
      return "SIGALRM";
    case SIGTERM:
      return "SIGTERM";
    case SIGXCPU:
      return "SIGXCPU";
    case SIGXFSZ:
      return "SIGXFSZ";
    case SIGSYS:
      return "SIGSYS";
    default:
      return "SIG" + std::to_string(sig);
  }
}

void kill_process_group(int pgid, int sig) noexcept {
  // pgid <= 1 would address our own group or every process: never do that.
  if (pgid > 1)
    ::kill(-pgid, sig); // ESRCH: the group is gone, nothing to do
}

bool process_alive(int pid) noexcept {
  if (pid <= 0)
    return false;
  if (::kill(pid, 0) != 0 && errno != EPERM)
    return false;
  // kill(pid, 0) also succeeds for zombies; /proc tells them apart.
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return true; // no /proc: trust kill()
  char buf[512];
  auto n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0)
    return true;
  std::string_view stat{buf, static_cast<size_t>(n)};
  auto paren = stat.rfind(')');
  if (paren == std::string_view::npos || paren + 2 >= stat.size())
    return true;
  char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

uint64_t process_start_time(int pid) noexcept {
  if (pid <= 0)
    return 0;
  try {
    std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
    std::string stat;
    if (!std::getline(in, stat))
      return 0;
    // comm (field 2) may contain spaces and parentheses: skip past the last
    // ')'; the tokens after it start at field 3.
    auto paren = stat.rfind(')');
    if (paren == std::string::npos)
      return 0;
    std::istringstream fields{stat.substr(paren + 1)};
    std::string token;
    for (int field = 3; field <= 22; ++field)
      if (!(fields >> token))
        return 0;
    return std::stoull(token);
  } catch (...) {
    return 0;
  }
}

// -- run_process --------------------------------------------------------------

process_outcome run_process(const process_spec& spec,
                            const process_callbacks& callbacks) {
  // posix_spawn has no portable chdir. A shell command gets a wrapper shell
  // that changes directory and then execs the real command line: the pid
  // stays the same and a missing directory cannot run the command anywhere
  // else. A direct argv uses glibc's addchdir_np (or the same wrapper with
  // `exec "$@"`, which passes the arguments through untouched). The
  // directory is checked up front so that a bad cwd is a spawn failure.
  std::string dir;
  if (!spec.cwd.empty()) {
    std::string cwd_error;
    dir = checked_cwd(spec.cwd, cwd_error);
    if (dir.empty())
      return spawn_failure(cwd_error);
  }
  const bool direct = !spec.argv.empty();
  [[maybe_unused]] bool spawn_chdir = false;
  std::vector<std::string> argv_store;
  if (direct) {
    if (spec.argv.front().empty())
      return spawn_failure("empty program name");
    argv_store = spec.argv;
    // A relative program path means the caller's directory, not `cwd`.
    auto& program = argv_store.front();
    if (!dir.empty() && program.find('/') != std::string::npos
        && program.front() != '/') {
      std::error_code ec;
      program = std::filesystem::absolute(program, ec).string();
    }
    if (!dir.empty()) {
#if CREW_SPAWN_CHDIR
      spawn_chdir = true;
#else
      argv_store.insert(argv_store.begin(),
                        {"/bin/sh", "-c", R"(cd -- "$1" && shift && exec "$@")",
                         "crew-worker", dir});
#endif
    }
  } else if (dir.empty()) {
    argv_store = {"/bin/sh", "-c", spec.command_line};
  } else {
    argv_store = {"/bin/sh",     "-c", R"(cd -- "$1" && exec /bin/sh -c "$2")",
                  "crew-worker", dir,  spec.command_line};
  }
  std::vector<std::string> env_store;
  std::string env_error;
  if (!detail::build_env(spec.env, env_store, env_error))
    return spawn_failure(env_error);
  std::vector<char*> argv;
  for (auto& arg : argv_store)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& kv : env_store)
    envp.push_back(kv.data());
  envp.push_back(nullptr);

  // Capture files and pipes.
  output_stream out;
  output_stream err;
  err.keep_tail = true;
  out.sink = &callbacks.on_stdout;
  err.sink = &callbacks.on_stderr;
  std::string open_error;
  if (!open_capture(spec.stdout_path, out.file, open_error)
      || !open_capture(spec.stderr_path, err.file, open_error))
    return spawn_failure(open_error);
  unique_fd in_read, in_write, out_write, err_write;
  int pipe_err = 0;
  if (!make_pipe(in_read, in_write, pipe_err)
      || !make_pipe(out.pipe, out_write, pipe_err)
      || !make_pipe(err.pipe, err_write, pipe_err))
    return spawn_failure("pipe: " + errno_text(pipe_err));

  // Spawn attributes: own process group, clean signal mask and dispositions.
  posix_spawnattr_t attr;
  detail::init_spawn_attributes(attr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_read.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
  // Do not leak descriptors other code opened without O_CLOEXEC.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
#if CREW_SPAWN_CHDIR
  if (spawn_chdir)
    posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
#endif
  detail::sigpipe_guard no_sigpipe;
  child_guard child;
  // glibc reports a failed exec (missing program, no permission) as the
  // return value of posix_spawn(p), so it surfaces as a spawn failure.
  int rc = direct ? posix_spawnp(&child.pid, argv.front(), &actions, &attr,
                                 argv.data(), envp.data())
                  : posix_spawn(&child.pid, "/bin/sh", &actions, &attr,
                                argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    child.pid = -1;
    if (direct)
      return spawn_failure("'" + spec.argv.front() + "': " + errno_text(rc));
    return spawn_failure(errno_text(rc));
  }
  auto started = clock_type::now();
  const pid_t pid = child.pid;
  in_read.reset();
  out_write.reset();
  err_write.reset();

  process_outcome result;
  result.spawned = true;
  unique_fd exit_fd{open_pidfd(pid)};
  if (callbacks.on_spawn)
    callbacks.on_spawn(static_cast<int>(pid));

  // Feed stdin without blocking; an empty payload is an immediate EOF.
  size_t in_offset = 0;
  if (spec.stdin_data.empty())
    in_write.reset();
  else
    detail::set_nonblocking(in_write.get());
  detail::set_nonblocking(out.pipe.get());
  detail::set_nonblocking(err.pipe.get());

  const bool has_timeout = spec.timeout_ms > 0;
  const auto deadline = started + milliseconds{spec.timeout_ms};
  const bool has_idle_limit = spec.idle_timeout_ms > 0;
  const auto idle_limit = milliseconds{spec.idle_timeout_ms};
  auto last_output = started;
  // The final drain: armed once `answered` says so, never re-armed.
  const bool has_drain = spec.final_drain_ms > 0 && callbacks.answered;
  bool drain_armed = false;
  clock_type::time_point drain_deadline;
  const auto grace = milliseconds{spec.kill_grace_ms};
  bool terminating = false; // SIGTERM sent after timeout or cancel
  bool killed = false;      // SIGKILL sent after grace
  clock_type::time_point kill_at;
  bool exited = false;
  clock_type::time_point drain_until;
  int status = 0;
  auto last_beat = started - heartbeat_interval;
  // Without a pidfd, and with both pipes closed, only waitpid tells us about
  // the exit: back off from 1 ms so short commands finish promptly without
  // busy waiting.
  auto idle_wait = milliseconds{1};
  // Wake-ups are for I/O, the exit and deadlines only, unless something
  // else has to be looked at periodically.
  const bool periodic = !exit_fd || callbacks.cancel != nullptr;
  bool exit_signalled = true; // look once before the first poll
  std::vector<char> buf(io_chunk);

  auto begin_termination = [&] {
    terminating = true;
    kill_process_group(pid, SIGTERM);
    kill_at = clock_type::now() + grace;
  };

  while (out.pipe || err.pipe || !exited) {
    auto now = clock_type::now();
    // Timeout and cancel.
    if (!terminating && !exited) {
      if (has_timeout && now >= deadline) {
        result.timed_out = true;
        begin_termination();
      } else if (drain_armed && now >= drain_deadline) {
        result.drained = true;
        out.sink = nullptr; // the answer stands: what follows is not news
        begin_termination();
      } else if (has_idle_limit && now - last_output >= idle_limit) {
        result.idle_timed_out = true;
        begin_termination();
      } else if (callbacks.cancel != nullptr
                 && callbacks.cancel->load(std::memory_order_relaxed)) {
        result.cancelled = true;
        begin_termination();
      }
    }
    // The grace period covers stragglers too: a grandchild that ignores
    // SIGTERM must not hold the pipes open for the whole drain period.
    if (terminating && !killed && now >= kill_at) {
      killed = true;
      kill_process_group(pid, SIGKILL);
    }
    // Reap the leader.
    if (!exited && (exit_signalled || !exit_fd)) {
      exit_signalled = false;
      auto w = waitpid(pid, &status, WNOHANG);
      if (w == pid || (w < 0 && errno == ECHILD)) {
        exited = true;
        child.reaped = true;
        drain_until = clock_type::now() + drain_limit;
        in_write.reset();
        exit_fd.reset();
      }
    }
    if (exited
        && ((!out.pipe && !err.pipe) || clock_type::now() >= drain_until))
      break;
    // Wait for I/O, the exit or the next deadline.
    pollfd fds[4];
    nfds_t nfds = 0;
    int in_idx = -1, out_idx = -1, err_idx = -1, exit_idx = -1;
    if (in_write) {
      in_idx = static_cast<int>(nfds);
      fds[nfds++] = {in_write.get(), POLLOUT, 0};
    }
    if (out.pipe) {
      out_idx = static_cast<int>(nfds);
      fds[nfds++] = {out.pipe.get(), POLLIN, 0};
    }
    if (err.pipe) {
      err_idx = static_cast<int>(nfds);
      fds[nfds++] = {err.pipe.get(), POLLIN, 0};
    }
    if (exit_fd) {
      exit_idx = static_cast<int>(nfds);
      fds[nfds++] = {exit_fd.get(), POLLIN, 0};
    }
    auto wait = periodic ? poll_interval : milliseconds::max();
    now = clock_type::now();
    if (has_timeout && !terminating && deadline > now)
      wait = std::min(wait, std::chrono::ceil<milliseconds>(deadline - now));
    if (has_idle_limit && !terminating && last_output + idle_limit > now)
      wait = std::min(wait, std::chrono::ceil<milliseconds>(
                                last_output + idle_limit - now));
    if (drain_armed && !terminating && drain_deadline > now)
      wait = std::min(wait,
                      std::chrono::ceil<milliseconds>(drain_deadline - now));
    if (terminating && !killed)
      wait = std::min(wait, std::chrono::ceil<milliseconds>(kill_at - now));
    if (exited)
      wait = std::min(wait, std::chrono::ceil<milliseconds>(drain_until - now));
    if (nfds == 0 && !exited) {
      wait = std::min(wait, idle_wait);
      idle_wait = std::min(idle_wait * 2, poll_interval);
    }
    int timeout_ms
        = wait == milliseconds::max()
              ? -1
              : static_cast<int>(std::clamp<int64_t>(
                  wait.count(), 0, std::numeric_limits<int>::max()));
    int ready = ::poll(fds, nfds, timeout_ms);
    if (ready < 0) {
      if (errno == EINTR)
        continue;
      break; // cannot happen with valid fds; the guard cleans up
    }
    if (ready == 0)
      continue;
    if (exit_idx >= 0 && fds[exit_idx].revents != 0)
      exit_signalled = true;
    if (in_idx >= 0 && fds[in_idx].revents != 0) {
      if (fds[in_idx].revents & (POLLERR | POLLHUP)) {
        in_write.reset(); // the child closed its stdin
      } else {
        auto left = spec.stdin_data.size() - in_offset;
        auto n = ::write(in_write.get(), spec.stdin_data.data() + in_offset,
                         std::min(left, io_chunk));
        if (n > 0) {
          in_offset += static_cast<size_t>(n);
          if (in_offset == spec.stdin_data.size())
            in_write.reset();
        } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
          in_write.reset(); // EPIPE: the child does not want more input
        }
      }
    }
    bool got_data = false;
    if (out_idx >= 0 && fds[out_idx].revents != 0
        && !out.read_some(buf.data(), buf.size(), got_data))
      out.pipe.reset();
    if (has_drain && got_data && !drain_armed && callbacks.answered()) {
      drain_armed = true;
      drain_deadline = clock_type::now() + milliseconds{spec.final_drain_ms};
    }
    if (err_idx >= 0 && fds[err_idx].revents != 0
        && !err.read_some(buf.data(), buf.size(), got_data))
      err.pipe.reset();
    if (got_data)
      last_output = clock_type::now();
    if (got_data && callbacks.on_output) {
      auto t = clock_type::now();
      if (t - last_beat >= heartbeat_interval) {
        last_beat = t;
        callbacks.on_output();
      }
    }
  }
  out.pipe.reset();
  err.pipe.reset();
  in_write.reset();
  if (terminating) {
    // Stragglers that ignored SIGTERM or outlived the leader.
    kill_process_group(pid, SIGKILL);
  }
  if (!exited) {
    // Only reachable if poll failed: the guard's SIGKILL + waitpid applies.
    result.error = "lost track of the process";
    return result;
  }

  result.duration_ms = elapsed_ms(started);
  result.stdout_bytes = out.bytes;
  result.stderr_bytes = err.bytes;
  // Text for an error message and so for an event: whole characters only.
  err.tail.erase(0, utf8_suffix_start(err.tail, stderr_tail_max));
  result.stderr_tail = valid_utf8(err.tail);
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  if (result.timed_out)
    result.error = "timed out after " + std::to_string(spec.timeout_ms) + " ms";
  else if (result.idle_timed_out)
    result.error = "no output for " + std::to_string(spec.idle_timeout_ms)
                   + " ms (response watchdog)";
  else if (result.cancelled)
    result.error = "cancelled";
  else if (result.drained)
    result.error.clear(); // the answer was delivered
  else if (result.signal != 0)
    result.error = "killed by signal " + std::to_string(result.signal) + " ("
                   + signal_name(result.signal) + ")";
  else if (result.exit_code != 0)
    result.error = "exit code " + std::to_string(result.exit_code);
  return result;
}

} // namespace crew
