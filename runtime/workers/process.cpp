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

// -- run_process: the command -------------------------------------------------

/// What `posix_spawn(p)` gets for a `process_spec`.
struct launch_args {
  std::string dir;          ///< absolute working directory; empty inherits ours
  bool direct = false;      ///< `spec.argv` run directly, else a shell line
  bool spawn_chdir = false; ///< posix_spawn itself changes into `dir`
  std::vector<std::string> argv_store;
  std::vector<std::string> env_store;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

/// The arguments for a direct `spec.argv` (in `dir`, if set); false for an
/// empty program name.
bool direct_argv(const process_spec& spec, launch_args& args) {
  if (spec.argv.front().empty())
    return false;
  args.argv_store = spec.argv;
  // A relative program path means the caller's directory, not `cwd`.
  auto& program = args.argv_store.front();
  if (!args.dir.empty() && program.find('/') != std::string::npos
      && program.front() != '/') {
    std::error_code ec;
    program = std::filesystem::absolute(program, ec).string();
  }
  if (!args.dir.empty()) {
#if CREW_SPAWN_CHDIR
    args.spawn_chdir = true;
#else
    detail::prepend_cd_wrapper(args.argv_store, args.dir);
#endif
  }
  return true;
}

/// Resolves the working directory, the arguments and the environment of
/// `spec`; false with `error` set when it cannot run.
bool prepare_launch(const process_spec& spec, launch_args& args,
                    std::string& error) {
  // posix_spawn has no portable chdir. A shell command gets a wrapper shell
  // that changes directory and then execs the real command line: the pid
  // stays the same and a missing directory cannot run the command anywhere
  // else. A direct argv uses glibc's addchdir_np (or the same wrapper with
  // `exec "$@"`, which passes the arguments through untouched). The
  // directory is checked up front so that a bad cwd is a spawn failure.
  if (!spec.cwd.empty()) {
    args.dir = detail::checked_cwd(spec.cwd, error);
    if (args.dir.empty())
      return false;
  }
  args.direct = !spec.argv.empty();
  if (args.direct) {
    if (!direct_argv(spec, args)) {
      error = "empty program name";
      return false;
    }
  } else if (args.dir.empty()) {
    args.argv_store = {"/bin/sh", "-c", spec.command_line};
  } else {
    args.argv_store
        = {"/bin/sh",     "-c",     R"(cd -- "$1" && exec /bin/sh -c "$2")",
           "crew-worker", args.dir, spec.command_line};
  }
  if (!detail::build_env(spec.env, args.env_store, error))
    return false;
  args.argv = detail::c_strings(args.argv_store);
  args.envp = detail::c_strings(args.env_store);
  return true;
}

/// The child's standard streams: stdin fed from `spec.stdin_data` (the
/// child reads `in_read`), stdout and stderr read from pipes (the child
/// writes `out_write` and `err_write`).
struct child_stdio {
  output_stream out;
  output_stream err;
  unique_fd in_read, in_write, out_write, err_write;
};

/// Opens the capture files and the pipes of `io`; false with `error` set.
bool open_stdio(const process_spec& spec, const process_callbacks& callbacks,
                child_stdio& io, std::string& error) {
  io.err.keep_tail = true;
  io.out.sink = &callbacks.on_stdout;
  io.err.sink = &callbacks.on_stderr;
  if (!open_capture(spec.stdout_path, io.out.file, error)
      || !open_capture(spec.stderr_path, io.err.file, error))
    return false;
  int pipe_err = 0;
  if (!make_pipe(io.in_read, io.in_write, pipe_err)
      || !make_pipe(io.out.pipe, io.out_write, pipe_err)
      || !make_pipe(io.err.pipe, io.err_write, pipe_err)) {
    error = "pipe: " + errno_text(pipe_err);
    return false;
  }
  return true;
}

/// Spawns the command of `args` into `pid`, then destroys `attr` and
/// `actions`; returns 0 or the error number.
int spawn_child(launch_args& args, posix_spawnattr_t& attr,
                posix_spawn_file_actions_t& actions, pid_t& pid) {
  // glibc reports a failed exec (missing program, no permission) as the
  // return value of posix_spawn(p), so it surfaces as a spawn failure.
  int rc = args.direct ? posix_spawnp(&pid, args.argv.front(), &actions, &attr,
                                      args.argv.data(), args.envp.data())
                       : posix_spawn(&pid, "/bin/sh", &actions, &attr,
                                     args.argv.data(), args.envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc;
}

// -- run_process: watching the child ------------------------------------------

/// The descriptors of one `poll`, with the slot of each (-1: not polled).
struct poll_set {
  pollfd fds[4];
  nfds_t n = 0;
  int in = -1;
  int out = -1;
  int err = -1;
  int exit = -1;

  /// Adds `fd` unless it is closed; returns its slot.
  int add(const unique_fd& fd, short events) {
    if (!fd)
      return -1;
    fds[n] = {fd.get(), events, 0};
    return static_cast<int>(n++);
  }

  /// Whether the descriptor in `slot` has something to report.
  bool ready(int slot) const { return slot >= 0 && fds[slot].revents != 0; }
};

/// Watches a spawned child until it exited and its pipes are closed: feeds
/// its stdin, reads its output, and ends its process group (SIGTERM, then
/// SIGKILL after the grace) on timeout, response watchdog, final drain or
/// cancel, which it records in the outcome.
class process_watch {
public:
  process_watch(const process_spec& spec, const process_callbacks& callbacks,
                child_stdio& io, child_guard& child, unique_fd& exit_fd,
                clock_type::time_point started, process_outcome& result)
      : spec_(spec), callbacks_(callbacks), io_(io), child_(child),
        exit_fd_(exit_fd), result_(result), pid_(child.pid),
        has_timeout_(spec.timeout_ms > 0),
        deadline_(started + milliseconds{spec.timeout_ms}),
        has_idle_limit_(spec.idle_timeout_ms > 0),
        idle_limit_(spec.idle_timeout_ms), last_output_(started),
        has_drain_(spec.final_drain_ms > 0 && callbacks.answered),
        grace_(spec.kill_grace_ms), last_beat_(started - heartbeat_interval),
        periodic_(!exit_fd || callbacks.cancel != nullptr), buf_(io_chunk) {
    // nop
  }

  /// Runs until the leader is reaped and both pipes are closed, or for at
  /// most `drain_limit` after the exit; then closes the pipes and kills the
  /// stragglers of a terminated group.
  void run();

  /// Whether the leader was reaped (false only if poll failed).
  bool exited() const noexcept { return exited_; }

  /// The wait status of the leader once `exited`.
  int status() const noexcept { return status_; }

private:
  void enforce_limits(clock_type::time_point now);
  void begin_termination();
  void reap();
  poll_set watched() const;
  int poll_timeout_ms(nfds_t nfds);
  void write_stdin(short revents);
  void read_output(const poll_set& ps);
  void close_up();

  const process_spec& spec_;
  const process_callbacks& callbacks_;
  child_stdio& io_;
  child_guard& child_;
  unique_fd& exit_fd_;
  process_outcome& result_;
  const pid_t pid_;
  size_t in_offset_ = 0; ///< how much of `spec_.stdin_data` went to stdin
  const bool has_timeout_;
  const clock_type::time_point deadline_;
  const bool has_idle_limit_;
  const milliseconds idle_limit_;
  clock_type::time_point last_output_;
  // The final drain: armed once `answered` says so, never re-armed.
  const bool has_drain_;
  bool drain_armed_ = false;
  clock_type::time_point drain_deadline_;
  const milliseconds grace_;
  bool terminating_ = false; // SIGTERM sent after timeout or cancel
  bool killed_ = false;      // SIGKILL sent after grace
  clock_type::time_point kill_at_;
  bool exited_ = false;
  clock_type::time_point drain_until_;
  int status_ = 0;
  clock_type::time_point last_beat_;
  // Without a pidfd, and with both pipes closed, only waitpid tells us about
  // the exit: back off from 1 ms so short commands finish promptly without
  // busy waiting.
  milliseconds idle_wait_{1};
  // Wake-ups are for I/O, the exit and deadlines only, unless something
  // else has to be looked at periodically.
  const bool periodic_;
  bool exit_signalled_ = true; // look once before the first poll
  std::vector<char> buf_;
};

void process_watch::run() {
  while (io_.out.pipe || io_.err.pipe || !exited_) {
    enforce_limits(clock_type::now());
    if (!exited_ && (exit_signalled_ || !exit_fd_))
      reap();
    if (exited_
        && ((!io_.out.pipe && !io_.err.pipe)
            || clock_type::now() >= drain_until_))
      break;
    // Wait for I/O, the exit or the next deadline.
    auto ps = watched();
    int timeout_ms = poll_timeout_ms(ps.n);
    int ready = ::poll(ps.fds, ps.n, timeout_ms);
    if (ready < 0) {
      if (errno == EINTR)
        continue;
      break; // cannot happen with valid fds; the guard cleans up
    }
    if (ready == 0)
      continue;
    if (ps.ready(ps.exit))
      exit_signalled_ = true;
    if (ps.ready(ps.in))
      write_stdin(ps.fds[ps.in].revents);
    read_output(ps);
  }
  close_up();
}

/// Starts terminating the group once the timeout, the final drain or the
/// response watchdog ran out or cancel fired; SIGKILL once the grace is over.
void process_watch::enforce_limits(clock_type::time_point now) {
  if (!terminating_ && !exited_) {
    if (has_timeout_ && now >= deadline_) {
      result_.timed_out = true;
      begin_termination();
    } else if (drain_armed_ && now >= drain_deadline_) {
      result_.drained = true;
      io_.out.sink = nullptr; // the answer stands: what follows is not news
      begin_termination();
    } else if (has_idle_limit_ && now - last_output_ >= idle_limit_) {
      result_.idle_timed_out = true;
      begin_termination();
    } else if (callbacks_.cancel != nullptr
               && callbacks_.cancel->load(std::memory_order_relaxed)) {
      result_.cancelled = true;
      begin_termination();
    }
  }
  // The grace period covers stragglers too: a grandchild that ignores
  // SIGTERM must not hold the pipes open for the whole drain period.
  if (terminating_ && !killed_ && now >= kill_at_) {
    killed_ = true;
    kill_process_group(pid_, SIGKILL);
  }
}

void process_watch::begin_termination() {
  terminating_ = true;
  kill_process_group(pid_, SIGTERM);
  kill_at_ = clock_type::now() + grace_;
}

/// Reaps the leader if it exited; the pipes then have `drain_limit` left.
void process_watch::reap() {
  exit_signalled_ = false;
  auto w = waitpid(pid_, &status_, WNOHANG);
  if (w == pid_ || (w < 0 && errno == ECHILD)) {
    exited_ = true;
    child_.reaped = true;
    drain_until_ = clock_type::now() + drain_limit;
    io_.in_write.reset();
    exit_fd_.reset();
  }
}

/// The open descriptors: stdin while there is input left, the pipes, the
/// pidfd until the exit.
poll_set process_watch::watched() const {
  poll_set ps;
  ps.in = ps.add(io_.in_write, POLLOUT);
  ps.out = ps.add(io_.out.pipe, POLLIN);
  ps.err = ps.add(io_.err.pipe, POLLIN);
  ps.exit = ps.add(exit_fd_, POLLIN);
  return ps;
}

/// How long the next poll of `nfds` descriptors may sleep: until the next
/// deadline, or -1 when nothing is due.
int process_watch::poll_timeout_ms(nfds_t nfds) {
  auto wait = periodic_ ? poll_interval : milliseconds::max();
  auto now = clock_type::now();
  if (has_timeout_ && !terminating_ && deadline_ > now)
    wait = std::min(wait, std::chrono::ceil<milliseconds>(deadline_ - now));
  if (has_idle_limit_ && !terminating_ && last_output_ + idle_limit_ > now)
    wait = std::min(wait, std::chrono::ceil<milliseconds>(last_output_
                                                          + idle_limit_ - now));
  if (drain_armed_ && !terminating_ && drain_deadline_ > now)
    wait = std::min(wait,
                    std::chrono::ceil<milliseconds>(drain_deadline_ - now));
  if (terminating_ && !killed_)
    wait = std::min(wait, std::chrono::ceil<milliseconds>(kill_at_ - now));
  if (exited_)
    wait = std::min(wait, std::chrono::ceil<milliseconds>(drain_until_ - now));
  if (nfds == 0 && !exited_) {
    wait = std::min(wait, idle_wait_);
    idle_wait_ = std::min(idle_wait_ * 2, poll_interval);
  }
  return wait == milliseconds::max()
             ? -1
             : static_cast<int>(std::clamp<int64_t>(
                 wait.count(), 0, std::numeric_limits<int>::max()));
}

/// Writes the next piece of the input; closes stdin once all of it went or
/// the child closed its end.
void process_watch::write_stdin(short revents) {
  if (revents & (POLLERR | POLLHUP)) {
    io_.in_write.reset(); // the child closed its stdin
    return;
  }
  const auto& data = spec_.stdin_data;
  auto left = data.size() - in_offset_;
  auto n = ::write(io_.in_write.get(), data.data() + in_offset_,
                   std::min(left, io_chunk));
  if (n > 0) {
    in_offset_ += static_cast<size_t>(n);
    if (in_offset_ == data.size())
      io_.in_write.reset();
  } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
    io_.in_write.reset(); // EPIPE: the child does not want more input
  }
}

/// Reads what stdout and stderr have, arms the final drain once the answer
/// is in, and feeds the response watchdog and the heartbeat.
void process_watch::read_output(const poll_set& ps) {
  bool got_data = false;
  if (ps.ready(ps.out)
      && !io_.out.read_some(buf_.data(), buf_.size(), got_data))
    io_.out.pipe.reset();
  if (has_drain_ && got_data && !drain_armed_ && callbacks_.answered()) {
    drain_armed_ = true;
    drain_deadline_ = clock_type::now() + milliseconds{spec_.final_drain_ms};
  }
  if (ps.ready(ps.err)
      && !io_.err.read_some(buf_.data(), buf_.size(), got_data))
    io_.err.pipe.reset();
  if (got_data)
    last_output_ = clock_type::now();
  if (got_data && callbacks_.on_output) {
    auto t = clock_type::now();
    if (t - last_beat_ >= heartbeat_interval) {
      last_beat_ = t;
      callbacks_.on_output();
    }
  }
}

void process_watch::close_up() {
  io_.out.pipe.reset();
  io_.err.pipe.reset();
  io_.in_write.reset();
  if (terminating_) {
    // Stragglers that ignored SIGTERM or outlived the leader.
    kill_process_group(pid_, SIGKILL);
  }
}

/// Fills in how the child ended: duration, output sizes, the stderr tail,
/// exit code or signal, and the error text.
void describe_outcome(const process_spec& spec, int status,
                      clock_type::time_point started, child_stdio& io,
                      process_outcome& result) {
  result.duration_ms = elapsed_ms(started);
  result.stdout_bytes = io.out.bytes;
  result.stderr_bytes = io.err.bytes;
  auto& tail = io.err.tail;
  // Text for an error message and so for an event: whole characters only.
  tail.erase(0, utf8_suffix_start(tail, stderr_tail_max));
  result.stderr_tail = valid_utf8(tail);
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
}

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
  launch_args args;
  if (std::string error; !prepare_launch(spec, args, error))
    return spawn_failure(error);
  child_stdio io;
  if (std::string error; !open_stdio(spec, callbacks, io, error))
    return spawn_failure(error);

  // Spawn attributes: own process group, clean signal mask and dispositions.
  posix_spawnattr_t attr;
  detail::init_spawn_attributes(attr);
  posix_spawn_file_actions_t actions;
  detail::init_file_actions(actions, io.in_read.get(), io.out_write.get(),
                            io.err_write.get(),
                            args.spawn_chdir ? args.dir.c_str() : nullptr);
  detail::sigpipe_guard no_sigpipe;
  child_guard child;
  int rc = spawn_child(args, attr, actions, child.pid);
  if (rc != 0) {
    child.pid = -1;
    if (args.direct)
      return spawn_failure("'" + spec.argv.front() + "': " + errno_text(rc));
    return spawn_failure(errno_text(rc));
  }
  auto started = clock_type::now();
  const pid_t pid = child.pid;
  io.in_read.reset();
  io.out_write.reset();
  io.err_write.reset();

  process_outcome result;
  result.spawned = true;
  unique_fd exit_fd{open_pidfd(pid)};
  if (callbacks.on_spawn)
    callbacks.on_spawn(static_cast<int>(pid));

  // Feed stdin without blocking; an empty payload is an immediate EOF.
  if (spec.stdin_data.empty())
    io.in_write.reset();
  else
    detail::set_nonblocking(io.in_write.get());
  detail::set_nonblocking(io.out.pipe.get());
  detail::set_nonblocking(io.err.pipe.get());

  process_watch watch{spec, callbacks, io, child, exit_fd, started, result};
  watch.run();
  if (!watch.exited()) {
    // Only reachable if poll failed: the guard's SIGKILL + waitpid applies.
    result.error = "lost track of the process";
    return result;
  }
  describe_outcome(spec, watch.status(), started, io, result);
  return result;
}

} // namespace crew
