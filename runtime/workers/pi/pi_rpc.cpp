#include "runtime/workers/pi/pi_rpc.hpp"

#include "runtime/workers/detail/spawn_util.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "runtime/workers/pi/model_routing.hpp" // with_thinking, strip_thinking
#include "runtime/workers/process.hpp"       // kill_process_group, signal_name
#include "store/atomic_file.hpp"     // write_all
#include "store/utf8.hpp"            // utf8_suffix_start

extern char** environ;

namespace crew {

namespace fs = std::filesystem;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct pi_rpc_pool::worker {
  worker() = default;
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;
  ~worker();

  std::string key;
  std::string model;  ///< the `--model` argument (with thinking); empty if none
  int pid = -1;       ///< also the process group id
  int in = -1;        ///< pi's stdin, written by us (non-blocking)
  int out = -1;       ///< pi's stdout (non-blocking)
  int err = -1;       ///< pi's stderr file, opened for reading
  fs::path dir;       ///< private: system prompt, sessions, stderr
  std::string buffer; ///< stdout after the last newline handled
  std::string pending; ///< not yet written to stdin
  bool eof = false;    ///< stdout closed
  bool reaped = false;
  int status = 0; ///< wait status once reaped
  uint64_t next_id = 0;
  uint64_t prompts = 0;
  bool busy = false; ///< guarded by the pool's mutex
  clock_type::time_point last_used;
};

namespace {

// How often a wait wakes up to look at the cancel flag; without one, waits
// last until output, the exit or the next deadline (at most `idle_slice`).
constexpr auto poll_slice = milliseconds{50};
constexpr auto idle_slice = milliseconds{1000};
constexpr auto abort_wait = milliseconds{2000};
// After an agent_end with stopReason error, pi may still start an automatic
// retry (`auto_retry_start` right after agent_end); wait that long for it.
constexpr auto retry_settle = milliseconds{250};
constexpr uint64_t control_limit_ms = 60000;     // without a response watchdog
constexpr auto close_grace = milliseconds{1000}; // stdin closed -> SIGTERM
constexpr auto term_grace = milliseconds{2000};  // SIGTERM -> SIGKILL
constexpr size_t max_logged_stderr = 256 * 1024;
constexpr size_t io_chunk = 64 * 1024;
// pi prints events with `type` first and responses with `id` first.
constexpr std::string_view event_prefix = R"({"type":")";
constexpr std::string_view id_prefix = R"({"id":)";

uint64_t ms_between(clock_type::time_point a, clock_type::time_point b) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<milliseconds>(b - a).count());
}

std::string errno_text(int err) {
  return std::strerror(err);
}

void close_fd(int& fd) {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

/// "exit code 3" or "killed by signal 9 (SIGKILL)".
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

/// The bytes of `fd` from `from` to its end, at most the last `limit`.
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

// -- one line of pi's stdout --------------------------------------------------

/// What the pool needs to know about a line: responses are matched by id,
/// events by type. Only responses (small) and a few rare events are parsed
/// here; `pi_stream` parses the events it is fed anyway.
struct line_info {
  bool response = false;
  bool is_json = false; ///< a JSON object (else a plain line)
  std::string type;
  std::string id;
  bool success = false;
  json body; ///< the parsed response or rare event
};

std::string string_of(const json& obj, const char* key) {
  auto i = obj.find(key);
  return i != obj.end() && i->is_string() ? i->get<std::string>()
                                          : std::string{};
}

bool succeeded(const json& response) {
  auto ok = response.find("success");
  return ok != response.end() && ok->is_boolean() && ok->get<bool>();
}

line_info classify(std::string_view line) {
  line_info info;
  auto parse = [&] {
    info.body = json::parse(line, nullptr, false);
    if (info.body.is_discarded() || !info.body.is_object()) {
      info.is_json = false;
      info.body = nullptr;
      return;
    }
    info.is_json = true;
    info.type = string_of(info.body, "type");
    info.id = string_of(info.body, "id");
    info.response = info.type == "response";
    info.success = succeeded(info.body);
  };
  if (line.starts_with(event_prefix)) {
    auto rest = line.substr(event_prefix.size());
    info.is_json = true;
    info.type = std::string{rest.substr(0, rest.find('"'))};
    if (info.type == "response" || info.type.starts_with("auto_retry"))
      parse();
  } else if (!line.empty() && line.front() == '{') {
    parse(); // responses (`{"id":`) and anything unusual
  }
  return info;
}

// -- process control ----------------------------------------------------------

/// Whether the leader exited, without reaping it (its zombie keeps the
/// process group id reserved until we have killed any stragglers).
bool has_exited(const pi_rpc_pool::worker& w) {
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
void reap(pi_rpc_pool::worker& w) {
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

void discard_output(pi_rpc_pool::worker& w) {
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

/// Waits until every worker of `ws` has exited or `until` passes, reading
/// and discarding their output so that none blocks on a full pipe.
void wait_exits(const std::vector<pi_rpc_pool::worker*>& ws,
                clock_type::time_point until) {
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

/// Stops processes gracefully and together: closes their stdin (pi exits
/// 0 at once when idle), SIGTERM to each group still running after
/// `close_grace`, SIGKILL after `term_grace`, then reaps them.
void stop_workers(const std::vector<pi_rpc_pool::worker*>& ws,
                  milliseconds close_wait, milliseconds term_wait) {
  std::vector<pi_rpc_pool::worker*> live;
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

/// Kills one process at once (SIGTERM, SIGKILL after `grace`).
void kill_worker(pi_rpc_pool::worker& w, milliseconds grace) {
  stop_workers({&w}, milliseconds{0}, grace);
}

/// Writes what is pending to pi's stdin without blocking.
void flush_input(pi_rpc_pool::worker& w) {
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

void send_line(pi_rpc_pool::worker& w, const json& command) {
  w.pending += command.dump(-1, ' ', false, json::error_handler_t::replace);
  w.pending += '\n';
  flush_input(w);
}

/// What one `step` saw.
struct step_result {
  bool done = false;   ///< `on_line` returned true
  bool output = false; ///< stdout produced data
  bool eof = false;    ///< stdout is closed and every line was handled
};

/// Hands each complete line of stdout to `on_line` until it returns true
/// (the rest stays buffered), waiting at most `wait` for more output.
template <class OnLine>
step_result step(pi_rpc_pool::worker& w, milliseconds wait, OnLine&& on_line) {
  step_result r;
  auto drain_lines = [&] {
    size_t begin = 0;
    for (auto nl = w.buffer.find('\n'); nl != std::string::npos;
         nl = w.buffer.find('\n', begin)) {
      std::string_view line{w.buffer.data() + begin, nl - begin};
      begin = nl + 1;
      if (!line.empty() && on_line(line)) {
        r.done = true;
        break;
      }
    }
    w.buffer.erase(0, begin);
  };
  drain_lines();
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
  flush_input(w);
  pollfd fds[2];
  nfds_t n = 0;
  fds[n++] = {w.out, POLLIN, 0};
  if (!w.pending.empty() && w.in >= 0)
    fds[n++] = {w.in, POLLOUT, 0};
  int ready = ::poll(fds, n, static_cast<int>(wait.count()));
  if (ready <= 0)
    return r;
  if (n > 1 && fds[1].revents != 0)
    flush_input(w);
  if (fds[0].revents == 0)
    return r;
  char buf[io_chunk];
  for (;;) {
    auto got = ::read(w.out, buf, sizeof(buf));
    if (got > 0) {
      r.output = true;
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
  drain_lines();
  return r;
}

/// Starts `pi --mode rpc` for `w` (its key already set).
bool spawn_worker(pi_rpc_pool::worker& w, const pi_attempt_request& req,
                  std::string& error) {
  const auto& job = req.job;
  std::error_code ec;
  auto base = fs::temp_directory_path(ec);
  if (ec)
    base = "/tmp";
  auto templ = (base / "crew-pi-rpc-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) {
    error = "cannot create a private temp directory in " + base.string() + ": "
            + errno_text(errno);
    return false;
  }
  w.dir = templ;
  fs::create_directories(w.dir / "sessions", ec);
  pi_arg_options options;
  options.mode = pi_output_mode::rpc;
  options.model = req.model;
  options.thinking = job.thinking;
  options.tools = job.tools;
  options.inherit_skills = job.inherit_skills;
  options.inherit_project_context = job.inherit_project_context;
  options.replace_system_prompt = job.replace_system_prompt;
  if (!job.system_prompt.empty()) {
    // Kept for the process's lifetime: pi may read it again.
    auto file = (w.dir / "system-prompt.md").string();
    int fd
        = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int err = fd < 0 ? errno : write_all(fd, job.system_prompt);
    if (fd >= 0)
      ::close(fd);
    if (err != 0) {
      error = "cannot write " + file + ": " + errno_text(err);
      return false;
    }
    options.system_prompt_file = file;
  }
  w.model = req.model.empty() ? std::string{}
                              : with_thinking(req.model, job.thinking);
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
  if (argv.front().find('/') != std::string::npos
      && argv.front().front() != '/')
    argv.front() = fs::absolute(argv.front(), ec).string();
  std::string dir;
  if (!job.cwd.empty()) {
    auto abs = fs::absolute(job.cwd, ec);
    struct stat st;
    int stat_err = ec ? ENOENT : 0;
    if (stat_err == 0 && ::stat(abs.c_str(), &st) != 0)
      stat_err = errno;
    else if (stat_err == 0 && !S_ISDIR(st.st_mode))
      stat_err = ENOTDIR;
    if (stat_err != 0) {
      error = "working directory '" + job.cwd + "': " + errno_text(stat_err);
      return false;
    }
    dir = abs.string();
  }
#if !(defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 29))
  if (!dir.empty())
    argv.insert(argv.begin(),
                {"/bin/sh", "-c", R"(cd -- "$1" && shift && exec "$@")",
                 "crew-worker", dir});
#endif
  std::vector<std::string> env_store;
  if (!detail::build_env(req.child_env, env_store, error))
    return false;

  auto stderr_file = (w.dir / "stderr.txt").string();
  int err_write = ::open(stderr_file.c_str(),
                         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (err_write < 0) {
    error = "cannot open " + stderr_file + ": " + errno_text(errno);
    return false;
  }
  w.err = ::open(stderr_file.c_str(), O_RDONLY | O_CLOEXEC);
  int in_pipe[2], out_pipe[2];
  int pipe_err = 0;
  if (!detail::make_pipe(in_pipe, pipe_err)) {
    ::close(err_write);
    error = "pipe: " + errno_text(pipe_err);
    return false;
  }
  if (!detail::make_pipe(out_pipe, pipe_err)) {
    ::close(err_write);
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    error = "pipe: " + errno_text(pipe_err);
    return false;
  }
  std::vector<char*> args;
  for (auto& arg : argv)
    args.push_back(arg.data());
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& kv : env_store)
    envp.push_back(kv.data());
  envp.push_back(nullptr);

  // Own process group, clean signal mask and dispositions.
  posix_spawnattr_t attr;
  detail::init_spawn_attributes(attr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_write, STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 29)
  if (!dir.empty())
    posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
#endif
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args.front(), &actions, &attr, args.data(),
                        envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_write);
  if (rc != 0) {
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    error = "'" + argv.front() + "': " + errno_text(rc);
    return false;
  }
  w.pid = pid;
  w.in = in_pipe[1];
  w.out = out_pipe[0];
  detail::set_nonblocking(w.in);
  detail::set_nonblocking(w.out);
  std::string command;
  for (const auto& arg : argv) {
    if (!command.empty())
      command += ' ';
    command += detail::shell_quote(arg);
  }
  req.log("[crew] rpc: spawned pi process " + std::to_string(pid) + ": "
          + command + "\n");
  return true;
}

/// Whether an idle process can take a task: it has not exited and its
/// stdout is open. Output it produced while idle is dropped.
bool usable(pi_rpc_pool::worker& w) {
  if (w.pid <= 0 || has_exited(w))
    return false;
  auto r = step(w, milliseconds{0}, [](std::string_view) { return false; });
  return !r.eof && w.in >= 0;
}

/// The spawn-time identity of a job's process (see `pi_rpc_pool`).
std::string key_of(const pi_attempt_request& req) {
  const auto& job = req.job;
  json key = json::array();
  key.push_back(req.command.argv);
  key.push_back(job.cwd);
  key.push_back(job.system_prompt);
  key.push_back(job.replace_system_prompt);
  key.push_back(job.tools);
  key.push_back(job.thinking);
  key.push_back(job.inherit_skills);
  key.push_back(job.inherit_project_context);
  // The model too: switching it with `set_model` would rewrite the user's
  // defaultModel in pi's settings.json. A fallback gets its own process.
  key.push_back(req.model);
  // The pi_env part of the child environment; job.env is per task.
  auto first = std::min(job.env.size(), req.child_env.size());
  key.push_back(std::vector<std::string>(
      req.child_env.begin() + static_cast<std::ptrdiff_t>(first),
      req.child_env.end()));
  return key.dump(-1, ' ', false, json::error_handler_t::replace);
}

// -- one model attempt on one process -----------------------------------------

/// The protocol of one attempt: `new_session`, then `prompt` until
/// `agent_end` (the process was started with the attempt's model), with the response
/// watchdog, the task's deadline and cancel turning into an `abort`.
class conversation {
public:
  conversation(pi_rpc_pool::worker& w, const pi_attempt_request& req,
               const pi_callbacks& cb, clock_type::time_point deadline,
               pi_attempt_report& rep)
      : w_(w), req_(req), cb_(cb), deadline_(deadline), rep_(rep) {
    // nop
  }

  /// Runs the attempt; false when the process must be replaced.
  bool run();

private:
  std::optional<json> command(json cmd, const std::string& name);
  bool prompt();
  bool cancelled() const {
    return cb_.cancel != nullptr && cb_.cancel->load(std::memory_order_relaxed);
  }
  /// Whether pi wrote nothing to stdout or stderr for `limit`. stderr is a
  /// file, not a pipe: it is only looked at once stdout has been quiet that
  /// long, so that waiting needs no periodic wake-ups.
  bool silent_for(milliseconds limit, clock_type::time_point now) {
    if (now - last_output_ < limit)
      return false;
    struct stat st;
    if (w_.err >= 0 && ::fstat(w_.err, &st) == 0 && st.st_size != err_seen_) {
      err_seen_ = st.st_size;
      // Output counts from when it was written (the file's mtime).
      auto written = std::chrono::system_clock::time_point{
          std::chrono::duration_cast<std::chrono::system_clock::duration>(
              std::chrono::seconds{st.st_mtim.tv_sec}
              + std::chrono::nanoseconds{st.st_mtim.tv_nsec})};
      auto age = std::chrono::system_clock::now() - written;
      auto at = now - std::chrono::duration_cast<clock_type::duration>(
                          std::max(age, decltype(age)::zero()));
      last_output_ = std::max(last_output_, std::min(at, now));
    }
    return now - last_output_ >= limit;
  }
  /// The longest wait before something has to be looked at again.
  milliseconds slice() const {
    return cb_.cancel != nullptr ? poll_slice : idle_slice;
  }
  /// pi closed stdout: reaps it and describes how it ended.
  void exited(const std::string& when);
  void kill(milliseconds grace) {
    kill_worker(w_, grace);
    record_status();
  }
  void record_status() {
    if (!w_.reaped)
      return;
    auto& proc = rep_.process;
    if (WIFSIGNALED(w_.status)) {
      proc.signal = WTERMSIG(w_.status);
      proc.exit_code = -1;
    } else {
      proc.exit_code = WEXITSTATUS(w_.status);
    }
    proc.error = describe_status(w_.status);
  }
  milliseconds grace() const { return milliseconds{req_.job.kill_grace_ms}; }

  pi_rpc_pool::worker& w_;
  const pi_attempt_request& req_;
  const pi_callbacks& cb_;
  clock_type::time_point deadline_;
  pi_attempt_report& rep_;
  clock_type::time_point last_output_ = clock_type::now();
  off_t err_seen_ = 0;
};

bool conversation::run() {
  err_seen_ = file_size(w_.err);
  // A fresh conversation. The previous one is over, so its session files
  // can go (spawn mode keeps none either).
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator{w_.dir / "sessions", ec})
    fs::remove_all(entry.path(), ec);
  auto fresh = command(json{{"type", "new_session"}}, "new_session");
  if (!fresh)
    return false;
  if (!succeeded(*fresh)) {
    rep_.failure = "pi rpc new_session failed: " + string_of(*fresh, "error");
    return false;
  }
  if (auto data = fresh->find("data"); data != fresh->end() && data->is_object()
                                       && data->value("cancelled", false)) {
    // An extension vetoed it: the old conversation would go on.
    rep_.failure = "pi rpc new_session was cancelled";
    return false;
  }
  return prompt();
}

std::optional<json> conversation::command(json cmd, const std::string& name) {
  auto id = "crew-" + std::to_string(++w_.next_id);
  cmd["id"] = id;
  send_line(w_, cmd);
  auto& proc = rep_.process;
  const auto rt = req_.job.response_timeout_ms;
  const auto limit = milliseconds{rt > 0 ? rt : control_limit_ms};
  last_output_ = clock_type::now();
  std::optional<json> response;
  for (;;) {
    auto now = clock_type::now();
    if (cancelled()) {
      proc.cancelled = true;
      kill(grace());
      return std::nullopt;
    }
    if (now >= deadline_) {
      proc.timed_out = true;
      kill(grace());
      return std::nullopt;
    }
    if (silent_for(limit, now)) {
      if (rt > 0) {
        proc.idle_timed_out = true;
        rep_.watchdog_action = "no response to " + name + "; process killed";
      } else {
        rep_.failure = "pi rpc: no response to " + name + " within "
                       + std::to_string(control_limit_ms)
                       + " ms; process killed";
      }
      kill(grace());
      return std::nullopt;
    }
    auto wait = std::min<clock_type::duration>(
        {clock_type::duration{slice()}, deadline_ - now,
         limit - (now - last_output_)});
    auto r = step(w_, std::chrono::ceil<milliseconds>(wait),
                  [&](std::string_view line) {
                    auto info = classify(line);
                    if (!info.response || info.id != id)
                      return false; // stale output of an earlier prompt
                    response = std::move(info.body);
                    return true;
                  });
    if (r.output)
      last_output_ = clock_type::now();
    if (r.done)
      return response;
    if (r.eof) {
      exited("before answering " + name);
      return std::nullopt;
    }
  }
}

bool conversation::prompt() {
  auto id = "crew-" + std::to_string(++w_.next_id);
  ++w_.prompts;
  send_line(w_,
            json{{"id", id}, {"type", "prompt"}, {"message", req_.job.prompt}});
  auto& proc = rep_.process;
  const auto rt = req_.job.response_timeout_ms;
  enum class phase { running, settling, aborting } ph = phase::running;
  clock_type::time_point settle_until, abort_until;
  // After an abort, both its agent_end and its response must arrive before
  // the process may take the next command.
  std::string abort_id;
  bool abort_answered = false;
  bool ended = false;
  // The final drain: the final answer arrived but agent_end did not follow
  // within `final_drain_ms`. The prompt is aborted and the answer stands, so
  // what pi prints after the drain (the aborted turn) no longer reaches the
  // stream.
  const auto drain = milliseconds{req_.final_drain_ms};
  bool drain_armed = false;
  clock_type::time_point drain_until;
  last_output_ = clock_type::now();
  auto forward = [&](std::string_view line) {
    if (proc.drained)
      return;
    std::string chunk{line};
    chunk += '\n';
    req_.on_stdout(chunk);
  };
  auto on_line = [&](std::string_view line) {
    auto info = classify(line);
    if (info.response) {
      if (!abort_id.empty() && info.id == abort_id) {
        abort_answered = true;
        return ended;
      }
      // Only a refused prompt matters (pi then sends no agent_end); the
      // stream records its error. Other responses are stale.
      if (info.id != id || info.success)
        return false;
      forward(line);
      return true;
    }
    forward(line);
    if (info.type == "agent_end") {
      if (ph == phase::aborting) {
        ended = true;
        return abort_answered;
      }
      if (ph == phase::running && req_.stream.stop_reason() == "error") {
        ph = phase::settling;
        settle_until = clock_type::now() + retry_settle;
        return false;
      }
      return true;
    }
    if (info.type == "auto_retry_start" && ph == phase::settling)
      ph = phase::running;
    if (info.type == "auto_retry_end" && ph != phase::running
        && !succeeded(info.body)) {
      // Retries gave up (or were aborted while sleeping): the prompt is over.
      ended = true;
      return ph == phase::settling || abort_answered;
    }
    return false;
  };
  for (;;) {
    auto now = clock_type::now();
    if (ph == phase::settling && now >= settle_until)
      return true;
    if (ph == phase::running) {
      if (cancelled())
        proc.cancelled = true;
      else if (now >= deadline_)
        proc.timed_out = true;
      else if (drain_armed && now >= drain_until)
        proc.drained = true;
      else if (rt > 0 && silent_for(milliseconds{rt}, now))
        proc.idle_timed_out = true;
      if (proc.cancelled || proc.timed_out || proc.idle_timed_out
          || proc.drained) {
        abort_id = "crew-" + std::to_string(++w_.next_id);
        send_line(w_, json{{"id", abort_id}, {"type", "abort"}});
        ph = phase::aborting;
        abort_until = now + abort_wait;
        if (!proc.drained)
          proc.exit_code = -1;
        rep_.watchdog_action = "prompt aborted";
        req_.log(std::string{"[crew] rpc: "}
                 + (proc.cancelled   ? "cancelled"
                    : proc.timed_out ? "task timed out"
                    : proc.drained
                        ? "no agent_end within "
                              + std::to_string(drain.count())
                              + " ms of the final answer (final drain)"
                        : "response watchdog fired")
                 + "; aborting the prompt\n");
      }
    } else if (ph == phase::aborting && now >= abort_until) {
      rep_.watchdog_action = "prompt aborted, but pi did not finish within "
                             + std::to_string(abort_wait.count())
                             + " ms; process killed";
      req_.log("[crew] rpc: pi ignored the abort; killing process "
               + std::to_string(w_.pid) + "\n");
      kill(grace());
      return false;
    }
    clock_type::duration wait = slice();
    if (ph == phase::running) {
      if (deadline_ > now)
        wait = std::min<clock_type::duration>(wait, deadline_ - now);
      if (rt > 0)
        wait = std::min<clock_type::duration>(
            wait, last_output_ + milliseconds{rt} - now);
      if (drain_armed)
        wait = std::min<clock_type::duration>(wait, drain_until - now);
    } else if (ph == phase::settling) {
      wait = std::min<clock_type::duration>(wait, settle_until - now);
    } else {
      wait = std::min<clock_type::duration>(wait, abort_until - now);
    }
    wait = std::max<clock_type::duration>(wait, clock_type::duration::zero());
    auto r = step(w_, std::chrono::ceil<milliseconds>(wait), on_line);
    if (r.output)
      last_output_ = clock_type::now();
    if (r.done) {
      if (ph == phase::aborting && !proc.drained)
        proc.exit_code = -1;
      return true;
    }
    if (!drain_armed && drain.count() > 0 && ph == phase::running
        && req_.stream.final_answer_seen()) {
      drain_armed = true;
      drain_until = clock_type::now() + drain;
    }
    if (r.eof) {
      exited("during the prompt");
      return false;
    }
  }
}

void conversation::exited(const std::string& when) {
  // stdout closed: pi is exiting; give it a moment, then make sure.
  wait_exits({&w_}, clock_type::now() + milliseconds{1000});
  kill(grace());
  rep_.failure = "pi rpc process " + std::to_string(w_.pid) + " exited " + when
                 + " (" + rep_.process.error + ")";
  req_.log("[crew] rpc: " + rep_.failure + "\n");
}

} // namespace

pi_rpc_pool::worker::~worker() {
  close_fd(in);
  close_fd(out);
  close_fd(err);
  if (!dir.empty()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

// -- pi_rpc_pool --------------------------------------------------------------

pi_rpc_pool::pi_rpc_pool(size_t max_processes, env_lookup env)
    : max_(std::max<size_t>(1, max_processes)),
      env_(env ? std::move(env) : process_env()) {
  // nop
}

pi_rpc_pool::~pi_rpc_pool() {
  std::vector<worker*> all;
  for (auto& w : workers_)
    all.push_back(w.get());
  stop_workers(all, close_grace, term_grace);
}

size_t pi_rpc_pool::spawned() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return spawned_;
}

size_t pi_rpc_pool::size() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return workers_.size();
}

std::unique_ptr<pi_rpc_pool::worker> pi_rpc_pool::detach(worker* w) {
  auto i = std::find_if(workers_.begin(), workers_.end(),
                        [w](const auto& x) { return x.get() == w; });
  if (i == workers_.end())
    return nullptr;
  auto owned = std::move(*i);
  workers_.erase(i);
  return owned;
}

void pi_rpc_pool::release(worker* w, bool broken) {
  if (!broken) {
    std::lock_guard<std::mutex> guard{mutex_};
    w->busy = false;
    w->last_used = clock_type::now();
  } else {
    std::unique_ptr<worker> owned;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      owned = detach(w);
    }
    if (owned)
      stop_workers({owned.get()}, milliseconds{0}, term_grace);
  }
  idle_.notify_all();
}

pi_rpc_pool::worker* pi_rpc_pool::acquire(const std::string& key,
                                          const pi_attempt_request& req,
                                          const pi_callbacks& cb,
                                          clock_type::time_point deadline,
                                          std::string& why, bool& fresh) {
  std::unique_lock<std::mutex> lock{mutex_};
  for (;;) {
    worker* match = nullptr;
    worker* lru = nullptr;
    for (auto& w : workers_) {
      if (w->busy)
        continue;
      if (w->key == key) {
        match = w.get();
        break;
      }
      if (lru == nullptr || w->last_used < lru->last_used)
        lru = w.get();
    }
    if (match != nullptr) {
      match->busy = true;
      lock.unlock();
      if (usable(*match)) {
        fresh = false;
        return match;
      }
      req.log("[crew] rpc: idle pi process " + std::to_string(match->pid)
              + " is gone; replacing it\n");
      release(match, true);
      lock.lock();
      continue;
    }
    if (workers_.size() < max_) {
      auto owned = std::make_unique<worker>();
      auto* w = owned.get();
      w->key = key;
      w->busy = true;
      workers_.push_back(std::move(owned));
      lock.unlock();
      std::string error;
      if (spawn_worker(*w, req, error)) {
        std::lock_guard<std::mutex> guard{mutex_};
        ++spawned_;
        fresh = true;
        return w;
      }
      release(w, true);
      why = "spawn failed: " + error;
      return nullptr;
    }
    if (lru != nullptr) {
      auto victim = detach(lru);
      lock.unlock();
      req.log("[crew] rpc: evicting idle pi process "
              + std::to_string(victim->pid) + " of another configuration\n");
      stop_workers({victim.get()}, close_grace, term_grace);
      victim.reset();
      lock.lock();
      continue;
    }
    // Every process is busy: wait for one.
    if (cb.cancel != nullptr && cb.cancel->load()) {
      why = "cancelled";
      return nullptr;
    }
    if (clock_type::now() >= deadline) {
      why = "timed out";
      return nullptr;
    }
    idle_.wait_for(lock, poll_slice);
  }
}

pi_attempt_report pi_rpc_pool::attempt(worker*& current,
                                       const pi_attempt_request& req,
                                       const pi_callbacks& cb) {
  pi_attempt_report rep;
  auto& proc = rep.process;
  const auto started = clock_type::now();
  const auto deadline = req.budget_ms > 0
                            ? started + milliseconds{req.budget_ms}
                            : clock_type::time_point::max();
  auto key = key_of(req);
  if (current != nullptr && current->key != key) {
    release(current, false); // healthy, for a task wanting its model
    current = nullptr;
  }
  if (current == nullptr) {
    std::string why;
    bool fresh = false;
    current = acquire(key, req, cb, deadline, why, fresh);
    if (current == nullptr) {
      // Waiting for a free process ended: like a cancel or timeout of pi.
      proc.spawned = why == "cancelled" || why == "timed out";
      proc.cancelled = why == "cancelled";
      proc.timed_out = why == "timed out";
      proc.error = why;
      return rep;
    }
    if (!fresh)
      req.log("[crew] rpc: reusing pi process " + std::to_string(current->pid)
              + " (" + std::to_string(current->prompts) + " prompts so far)\n");
    if (cb.on_spawn)
      cb.on_spawn(current->pid);
  }
  proc.spawned = true;
  proc.exit_code = 0;
  auto err_from = file_size(current->err);
  conversation talk{*current, req, cb, deadline, rep};
  bool healthy = talk.run();
  rep.stderr_text = read_from(current->err, err_from, max_logged_stderr);
  proc.duration_ms = ms_between(started, clock_type::now());
  if (!healthy) {
    req.log("[crew] rpc: pi process " + std::to_string(current->pid)
            + " is dropped; the next attempt gets a new one\n");
    release(current, true);
    current = nullptr;
  }
  return rep;
}

pi_result pi_rpc_pool::run(const pi_job& job, const pi_callbacks& cb) {
  pi_callbacks callbacks = cb;
  callbacks.env = env_;
  worker* current = nullptr;
  pi_attempt_backend backend = [&](const pi_attempt_request& req) {
    return attempt(current, req, callbacks);
  };
  struct lease {
    pi_rpc_pool& pool;
    worker*& w;
    ~lease() {
      if (w != nullptr)
        pool.release(w, false);
    }
  } guard{*this, current};
  return run_pi_attempt_with(job, callbacks, backend);
}

} // namespace crew
