#include "runtime/workers/pi/pi_rpc_process.hpp"

#include "runtime/workers/detail/spawn_util.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/workers/pi/model_routing.hpp" // with_thinking
#include "runtime/workers/process.hpp"          // kill_process_group
#include "store/atomic_file.hpp"                // write_all
#include "store/utf8.hpp"                       // utf8_suffix_start

namespace crew {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace pi_rpc {

namespace {

constexpr size_t io_chunk = 64 * 1024;

std::string errno_text(int err) {
  return std::strerror(err);
}

void close_fd(int& fd) {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

// -- process control ----------------------------------------------------------

/// Whether the leader exited, without reaping it (its zombie keeps the
/// process group id reserved until we have killed any stragglers).
bool has_exited(const worker& w) {
  if (w.pid <= 0 || w.reaped)
    return true;
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(w.pid), &info,
             WEXITED | WNOHANG | WNOWAIT)
      != 0)
    return errno == ECHILD;
  return info.si_pid == w.pid;
}

/// Kills what is left of the group and reaps the leader (blocking).
void reap(worker& w) {
  if (w.pid <= 0 || w.reaped)
    return;
  kill_process_group(w.pid, SIGKILL);
  int status = 0;
  while (waitpid(w.pid, &status, 0) < 0) {
    if (errno != EINTR) {
      status = 0;
      break;
    }
  }
  w.status = status;
  w.reaped = true;
}

void discard_output(worker& w) {
  char buf[4096];
  while (w.out >= 0) {
    auto n = ::read(w.out, buf, sizeof(buf));
    if (n > 0)
      continue;
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0) {
      w.eof = true;
      close_fd(w.out);
    }
    break;
  }
}

/// Writes what is pending to pi's stdin without blocking.
void flush_input(worker& w) {
  if (w.pending.empty() || w.in < 0)
    return;
  detail::sigpipe_guard no_sigpipe;
  size_t done = 0;
  while (done < w.pending.size()) {
    auto n = ::write(w.in, w.pending.data() + done, w.pending.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    // EPIPE: pi is gone; its stdout EOF reports that.
    close_fd(w.in);
    w.pending.clear();
    return;
  }
  w.pending.erase(0, done);
}

// -- spawning -----------------------------------------------------------------

/// Writes the job's system prompt into `w.dir` and names the file in
/// `options`; false with `error` set.
bool write_system_prompt(const worker& w, const pi_job& job,
                         pi_arg_options& options, std::string& error) {
  // Kept for the process's lifetime: pi may read it again.
  auto file = (w.dir / "system-prompt.md").string();
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  int err = fd < 0 ? errno : write_all(fd, job.system_prompt);
  if (fd >= 0)
    ::close(fd);
  if (err != 0) {
    error = "cannot write " + file + ": " + errno_text(err);
    return false;
  }
  options.system_prompt_file = file;
  return true;
}

/// The command line of pi for `w`: `req.command` and pi's arguments, with
/// the session directory of `w` instead of `--no-session`.
std::vector<std::string> rpc_argv(const worker& w,
                                  const pi_attempt_request& req,
                                  const pi_arg_options& options) {
  std::vector<std::string> argv = req.command.argv;
  for (auto& arg : pi_args(options)) {
    if (arg == "--no-session") {
      // pi's new_session with --no-session writes into the cwd.
      argv.emplace_back("--session-dir");
      argv.push_back((w.dir / "sessions").string());
    } else {
      argv.push_back(std::move(arg));
    }
  }
  // A relative program path means our directory, not the job's cwd.
  std::error_code ec;
  if (argv.front().find('/') != std::string::npos
      && argv.front().front() != '/')
    argv.front() = fs::absolute(argv.front(), ec).string();
  return argv;
}

/// The descriptors pi gets as its stdio (`err_write`, `in_pipe[0]`,
/// `out_pipe[1]`), and our ends of its pipes.
struct rpc_stdio {
  int err_write = -1;
  int in_pipe[2];
  int out_pipe[2];
};

/// Opens pi's stderr file (appended by pi, read by us through `w.err`) and
/// the pipes of its stdin and stdout; false with `error` set.
bool open_rpc_stdio(worker& w, rpc_stdio& io, std::string& error) {
  auto stderr_file = (w.dir / "stderr.txt").string();
  io.err_write = ::open(stderr_file.c_str(),
                        O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (io.err_write < 0) {
    error = "cannot open " + stderr_file + ": " + errno_text(errno);
    return false;
  }
  w.err = ::open(stderr_file.c_str(), O_RDONLY | O_CLOEXEC);
  int pipe_err = 0;
  if (!detail::make_pipe(io.in_pipe, pipe_err)) {
    ::close(io.err_write);
    error = "pipe: " + errno_text(pipe_err);
    return false;
  }
  if (!detail::make_pipe(io.out_pipe, pipe_err)) {
    ::close(io.err_write);
    ::close(io.in_pipe[0]);
    ::close(io.in_pipe[1]);
    error = "pipe: " + errno_text(pipe_err);
    return false;
  }
  return true;
}

/// Spawns `argv` with `env` and the stdio of `io`, in `dir` unless it is
/// empty, and hands our ends of the pipes to `w`; false with `error` set.
bool spawn_rpc(worker& w, std::vector<std::string>& argv,
               std::vector<std::string>& env, const std::string& dir,
               rpc_stdio& io, std::string& error) {
  auto args = detail::c_strings(argv);
  auto envp = detail::c_strings(env);
  // Own process group, clean signal mask and dispositions.
  posix_spawnattr_t attr;
  detail::init_spawn_attributes(attr);
  posix_spawn_file_actions_t actions;
  detail::init_file_actions(actions, io.in_pipe[0], io.out_pipe[1],
                            io.err_write, dir.empty() ? nullptr : dir.c_str());
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args.front(), &actions, &attr, args.data(),
                        envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(io.in_pipe[0]);
  ::close(io.out_pipe[1]);
  ::close(io.err_write);
  if (rc != 0) {
    ::close(io.in_pipe[1]);
    ::close(io.out_pipe[0]);
    error = "'" + argv.front() + "': " + errno_text(rc);
    return false;
  }
  w.pid = pid;
  w.in = io.in_pipe[1];
  w.out = io.out_pipe[0];
  detail::set_nonblocking(w.in);
  detail::set_nonblocking(w.out);
  return true;
}

} // namespace

bool spawn_worker(worker& w, const pi_attempt_request& req,
                  std::string& error) {
  const auto& job = req.job;
  w.dir = detail::make_private_dir("crew-pi-rpc-", error);
  if (w.dir.empty())
    return false;
  std::error_code ec;
  fs::create_directories(w.dir / "sessions", ec);
  auto options = pi_job_options(job, pi_output_mode::rpc, req.model);
  if (!job.system_prompt.empty()
      && !write_system_prompt(w, job, options, error))
    return false;
  w.model = req.model.empty() ? std::string{}
                              : with_thinking(req.model, job.thinking);
  auto argv = rpc_argv(w, req, options);
  std::string dir;
  if (!job.cwd.empty()) {
    dir = detail::checked_cwd(job.cwd, error);
    if (dir.empty())
      return false;
  }
#if !CREW_SPAWN_CHDIR
  if (!dir.empty())
    detail::prepend_cd_wrapper(argv, dir);
#endif
  std::vector<std::string> env;
  if (!detail::build_env(req.child_env, env, error))
    return false;
  rpc_stdio io;
  if (!open_rpc_stdio(w, io, error) || !spawn_rpc(w, argv, env, dir, io, error))
    return false;
  req.log("[crew] rpc: spawned pi process " + std::to_string(w.pid) + ": "
          + detail::shell_command(argv) + "\n");
  return true;
}

bool usable(worker& w) {
  if (w.pid <= 0 || has_exited(w))
    return false;
  auto r = step(w, milliseconds{0}, [](std::string_view) { return false; });
  return !r.eof && w.in >= 0;
}

void wait_exits(const std::vector<worker*>& ws, clock_type::time_point until) {
  for (;;) {
    bool all = true;
    for (auto* w : ws) {
      discard_output(*w);
      all = all && has_exited(*w);
    }
    if (all || clock_type::now() >= until)
      return;
    ::usleep(5000);
  }
}

void stop_workers(const std::vector<worker*>& ws, milliseconds close_wait,
                  milliseconds term_wait) {
  std::vector<worker*> live;
  for (auto* w : ws) {
    close_fd(w->in);
    w->pending.clear();
    if (w->pid > 0 && !w->reaped)
      live.push_back(w);
  }
  if (live.empty())
    return;
  if (close_wait.count() > 0)
    wait_exits(live, clock_type::now() + close_wait);
  bool termed = false;
  for (auto* w : live)
    if (!has_exited(*w)) {
      kill_process_group(w->pid, SIGTERM);
      termed = true;
    }
  if (termed)
    wait_exits(live, clock_type::now() + term_wait);
  for (auto* w : live)
    reap(*w);
}

void kill_worker(worker& w, milliseconds grace) {
  stop_workers({&w}, milliseconds{0}, grace);
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " ("
           + signal_name(WTERMSIG(status)) + ")";
  return "exit code " + std::to_string(WEXITSTATUS(status));
}

off_t file_size(int fd) {
  struct stat st;
  return fd >= 0 && ::fstat(fd, &st) == 0 ? st.st_size : 0;
}

std::string read_from(int fd, off_t from, size_t limit) {
  auto end = file_size(fd);
  if (end <= from)
    return {};
  auto start = std::max<off_t>(from, end - static_cast<off_t>(limit + 3));
  std::string out(static_cast<size_t>(end - start), '\0');
  size_t got = 0;
  while (got < out.size()) {
    auto n = ::pread(fd, out.data() + got, out.size() - got,
                     start + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  // The last `limit` bytes from the start of a character: the 3 more read
  // are the rest of one cut at the limit.
  auto cut = utf8_suffix_start(out, limit);
  out.erase(0, cut);
  if (cut > 0)
    out = "[crew: stderr truncated to the last " + std::to_string(limit / 1024)
          + " KiB]\n" + out;
  return out;
}

void send_line(worker& w, const json& command) {
  w.pending += command.dump(-1, ' ', false, json::error_handler_t::replace);
  w.pending += '\n';
  flush_input(w);
}

bool read_stdout(worker& w, milliseconds wait, bool& output) {
  flush_input(w);
  pollfd fds[2];
  nfds_t n = 0;
  fds[n++] = {w.out, POLLIN, 0};
  if (!w.pending.empty() && w.in >= 0)
    fds[n++] = {w.in, POLLOUT, 0};
  int ready = ::poll(fds, n, static_cast<int>(wait.count()));
  if (ready <= 0)
    return false;
  if (n > 1 && fds[1].revents != 0)
    flush_input(w);
  if (fds[0].revents == 0)
    return false;
  char buf[io_chunk];
  for (;;) {
    auto got = ::read(w.out, buf, sizeof(buf));
    if (got > 0) {
      output = true;
      w.buffer.append(buf, static_cast<size_t>(got));
      if (static_cast<size_t>(got) < sizeof(buf))
        break;
      continue;
    }
    if (got < 0 && errno == EINTR)
      continue;
    if (got == 0) {
      w.eof = true;
      close_fd(w.out);
    }
    break;
  }
  return true;
}

} // namespace pi_rpc

pi_rpc_pool::worker::~worker() {
  using pi_rpc::close_fd;
  close_fd(in);
  close_fd(out);
  close_fd(err);
  if (!dir.empty()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

} // namespace crew
