#include "runtime/workers/pi/pi_worker.hpp"

#include "runtime/workers/detail/spawn_util.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "runtime/workers/pi/pi_system_prompt.hpp"
#include "runtime/workers/process.hpp"
#include "store/atomic_file.hpp"
#include "store/clock.hpp"
#include "store/utf8.hpp"

namespace crew {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto status_interval = milliseconds{500};
constexpr size_t max_recent_output = 50; // lines kept in progress
constexpr size_t max_lines_per_event = 10;
constexpr size_t max_logged_stderr = 256 * 1024;

uint64_t elapsed_ms(clock_type::time_point since) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<milliseconds>(clock_type::now() - since)
          .count());
}

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

void add_usage(pi_usage& sum, const pi_usage& x) {
  sum.input += x.input;
  sum.output += x.output;
  sum.cache_read += x.cache_read;
  sum.cache_write += x.cache_write;
  sum.total_tokens += x.total_tokens;
  sum.cost += x.cost;
  sum.turns += x.turns;
}

json usage_json(const pi_usage& u) {
  return json{{"input", u.input},
              {"output", u.output},
              {"cacheRead", u.cache_read},
              {"cacheWrite", u.cache_write},
              {"totalTokens", u.total_tokens},
              {"cost", u.cost},
              {"turns", u.turns}};
}

/// The last line of `text` that is not blank, at most its last 2 KiB, as
/// valid UTF-8: text for an error message and so for an event.
std::string last_line(std::string_view text) {
  while (!text.empty()
         && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '
             || text.back() == '\t'))
    text.remove_suffix(1);
  auto nl = text.rfind('\n');
  auto line = nl == std::string_view::npos ? text : text.substr(nl + 1);
  return valid_utf8(line.substr(utf8_suffix_start(line, 2048)));
}

/// An append-only file that never throws: a write error (a full disk, a
/// removed directory) closes it and later writes are dropped, because the
/// live files must never fail the run.
class append_sink {
public:
  append_sink() = default;
  append_sink(const append_sink&) = delete;
  append_sink& operator=(const append_sink&) = delete;
  ~append_sink() { close(); }

  void open(const std::string& path, bool truncate) {
    close();
    if (path.empty())
      return;
    std::error_code ec;
    fs::create_directories(fs::path{path}.parent_path(), ec);
    int flags
        = O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND);
    fd_ = ::open(path.c_str(), flags, 0644);
  }

  void write(std::string_view bytes) {
    if (fd_ >= 0 && !bytes.empty() && write_all(fd_, bytes) != 0)
      close();
  }

private:
  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

  int fd_ = -1;
};

/// The agent record `status.json`, replaced atomically by every write
/// without a new inode each time (creating files is what costs most here;
/// see `write_file_swap`). `close` removes the spare. Never throws: the
/// record is advisory, and a failed write leaves the previous one.
class record_file {
public:
  record_file() = default;
  record_file(const record_file&) = delete;
  record_file& operator=(const record_file&) = delete;
  ~record_file() { close(); }

  void open(const std::string& path) {
    path_ = path;
  }

  void write(std::string_view content) {
    if (path_.empty())
      return;
    try {
      write_file_swap(path_, content, false);
      written_ = true;
    } catch (const std::exception&) {
      // advisory: the previous record stays
    }
  }

  void close() {
    if (!written_)
      return;
    std::error_code ec;
    fs::remove(spare_path(path_), ec);
    written_ = false;
  }

private:
  fs::path path_;
  bool written_ = false; ///< a spare may exist
};

/// The last `limit` bytes of a stream, with a note when earlier ones went.
class tail_buffer {
public:
  explicit tail_buffer(size_t limit) : limit_(limit) {
    // nop
  }

  void append(std::string_view chunk) {
    text_.append(chunk);
    if (text_.size() > 2 * limit_)
      trim();
  }

  std::string take() {
    trim();
    if (dropped_)
      text_.insert(0, "[crew: stderr truncated to the last "
                          + std::to_string(limit_ / 1024) + " KiB]\n");
    return std::move(text_);
  }

private:
  void trim() {
    if (text_.size() > limit_) {
      text_.erase(0, utf8_suffix_start(text_, limit_));
      dropped_ = true;
    }
  }

  size_t limit_;
  std::string text_;
  bool dropped_ = false;
};

uint64_t count_lines(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return 0;
  return static_cast<uint64_t>(std::count(std::istreambuf_iterator<char>{in},
                                          std::istreambuf_iterator<char>{},
                                          '\n'));
}

std::string pi_unusable_error(const pi_command& cmd) {
  auto error = "pi CLI not usable: " + cmd.problem;
  if (cmd.problem.find("install") == std::string::npos)
    error += " (install @mariozechner/pi-coding-agent, or point "
             "PI_TEAMS_PI_BIN at the pi executable)";
  return error;
}

/// The model request of `job`: its first model, the others as fallbacks.
model_request model_request_of(const pi_job& job) {
  std::vector<std::string> fallbacks;
  model_request request;
  if (!job.models.empty()) {
    request.agent_model = job.models.front();
    fallbacks.assign(job.models.begin() + 1, job.models.end());
  }
  request.fallback_models = std::move(fallbacks);
  return request;
}

/// Appends the last line of pi's stderr, if any, to `error`.
void add_stderr_tail(std::string& error, std::string_view stderr_text) {
  if (auto tail = last_line(stderr_text); !tail.empty())
    error += "; stderr: " + tail;
}

/// One call of `run_pi_attempt`: the job, its live files and the state the
/// agent record shows.
class pi_run {
public:
  pi_run(const pi_job& job, const pi_callbacks& cb,
         const pi_attempt_backend* backend = nullptr)
      : job_(job), cb_(cb), env_(cb.env ? cb.env : process_env()),
        backend_(backend) {
    // nop
  }

  pi_result run();

private:
  // -- attempts ---------------------------------------------------------------

  /// What one attempt produced besides its `model_attempt`.
  struct attempt_outcome {
    model_attempt attempt;
    std::string text;
    int signal = 0;
    bool stop = false; ///< do not try another model (cancel, no time left)
  };

  void set_child_env(const depth_guard& guard);
  pi_result run_on_backend(const pi_command& cmd);
  pi_result run_spawned(const pi_command& cmd);
  template <class Attempt>
  void attempt_loop(Attempt&& attempt);
  void record_attempt(attempt_outcome& out);
  attempt_outcome mock_attempt(const std::string& mode,
                               const std::string& model);
  template <class Exec>
  attempt_outcome real_attempt(const std::string& model, Exec&& exec);
  bool may_start(attempt_outcome& out, uint64_t& budget);
  void log_stderr(const std::string& stderr_text);
  void judge_attempt(attempt_outcome& out, const pi_stream& stream,
                     const pi_attempt_report& report);
  void keep_answer(attempt_outcome& out, const pi_attempt_report& report);
  void stopped_attempt(pi_outcome& oc, const pi_attempt_report& report);
  pi_attempt_report spawn_attempt(const pi_command& cmd,
                                  const std::string& system_prompt_file,
                                  const std::string& model, uint64_t budget,
                                  pi_stream& stream);
  void finish_attempt(attempt_outcome& out, const pi_stream& stream,
                      const pi_outcome& oc);
  void fail_early(std::string error, int exit_code);

  // -- live files -------------------------------------------------------------

  void open_files();
  void consume(const std::vector<pi_line>& lines);
  void remember_output(std::string_view display);
  void on_chunk(pi_stream& stream, std::string_view chunk);
  void log(std::string_view text) { log_.write(text); }
  void write_status(std::string_view status);
  void maybe_write_status();
  json status_json(std::string_view status) const;
  void add_identity(json& rec, std::string_view status) const;
  json progress_json(uint64_t tools) const;
  std::string agent_file(const char* name) const {
    return job_.agent_dir.empty() ? std::string{}
                                  : (fs::path{job_.agent_dir} / name).string();
  }

  // -- end --------------------------------------------------------------------

  pi_result finish();
  void write_result_file();
  std::string summary() const;

  const pi_job& job_;
  const pi_callbacks& cb_;
  env_lookup env_;
  const pi_attempt_backend* backend_;
  clock_type::time_point started_ = clock_type::now();
  std::string started_at_ = iso_now();
  std::string completed_at_;
  model_plan plan_;
  pi_result result_;
  bool result_written_ = false;
  std::vector<std::string> child_env_;
  uint64_t drain_ms_ = 0; ///< the resolved final drain

  append_sink transcript_;
  append_sink events_;
  append_sink output_;
  record_file status_;
  append_sink log_;
  uint64_t seq_ = 0;
  std::deque<std::string> recent_output_;
  std::string last_activity_at_;
  clock_type::time_point last_status_;

  // The attempt in flight: its stream feeds the progress of the record.
  const pi_stream* live_ = nullptr;
  std::string live_model_;
};

pi_result pi_run::run() {
  plan_ = model_candidates(model_request_of(job_));
  open_files();
  log("[crew] task " + job_.task_id + " (agent " + job_.agent + ") started at "
      + started_at_ + "\n");
  write_status("running");

  auto guard = check_depth(env_, job_.config_max_depth);
  if (guard.blocked()) {
    // Before anything else, mocks included, exactly like pi-crew.
    fail_early(guard.error(), 1);
    return finish();
  }
  set_child_env(guard);

  if (auto mode = env_("PI_TEAMS_MOCK_CHILD_PI"); mode && !mode->empty()) {
    log("[crew] PI_TEAMS_MOCK_CHILD_PI=" + *mode + ": no process is spawned\n");
    attempt_loop(
        [&](const std::string& model) { return mock_attempt(*mode, model); });
    return finish();
  }

  auto cmd = pi_binary(env_);
  if (!cmd.usable()) {
    fail_early(pi_unusable_error(cmd), -1);
    return finish();
  }
  if (backend_ != nullptr)
    return run_on_backend(cmd);
  return run_spawned(cmd);
}

/// The environment of pi: `job_.env` plus the variables of `pi_env`; and the
/// final drain, which may come from the environment.
void pi_run::set_child_env(const depth_guard& guard) {
  child_env_ = job_.env;
  auto extra = pi_env(guard.depth, guard.max_depth,
                      job_.agent.empty() ? job_.role : job_.agent,
                      job_.inherit_project_context, job_.inherit_skills);
  child_env_.insert(child_env_.end(), extra.begin(), extra.end());
  drain_ms_ = job_.final_drain_ms ? *job_.final_drain_ms : final_drain_ms(env_);
}

/// Runs the model attempts on `backend_` (the rpc pool), then finishes.
pi_result pi_run::run_on_backend(const pi_command& cmd) {
  attempt_loop([&](const std::string& model) {
    return real_attempt(model, [&](uint64_t budget, pi_stream& stream) {
      pi_attempt_request req{
          job_,
          cmd,
          model,
          child_env_,
          budget,
          drain_ms_,
          stream,
          [&](std::string_view chunk) { on_chunk(stream, chunk); },
          [&](std::string_view text) { log(text); }};
      return (*backend_)(req);
    });
  });
  return finish();
}

/// Runs the model attempts as spawned `pi --mode json` processes, then
/// finishes; the system prompt file lasts until the end.
pi_result pi_run::run_spawned(const pi_command& cmd) {
  system_prompt_lease system_prompt;
  if (std::string error; !job_.system_prompt.empty()
                         && !system_prompt.acquire(job_.system_prompt, error)) {
    fail_early(std::move(error), -1);
    return finish();
  }
  attempt_loop([&](const std::string& model) {
    return real_attempt(model, [&](uint64_t budget, pi_stream& stream) {
      return spawn_attempt(cmd, system_prompt.path(), model, budget, stream);
    });
  });
  return finish();
}

template <class Attempt>
void pi_run::attempt_loop(Attempt&& attempt) {
  auto count = std::max<size_t>(1, plan_.candidates.size());
  for (size_t i = 0; i < count; ++i) {
    const std::string model
        = plan_.candidates.empty() ? std::string{} : plan_.candidates[i];
    log("[crew] attempt " + std::to_string(i + 1) + "/" + std::to_string(count)
        + " model=" + (model.empty() ? "default" : model) + " at " + iso_now()
        + "\n");
    live_model_ = model;
    auto out = attempt(model);
    live_ = nullptr;
    const auto& a = out.attempt;
    log("[crew] attempt " + std::to_string(i + 1) + " "
        + (a.success ? "succeeded" : "failed")
        + ": exitCode=" + std::to_string(a.exit_code)
        + (out.signal != 0 ? " signal=" + signal_name(out.signal) : "")
        + (a.error.empty() ? "" : " error=" + last_line(a.error)) + "\n");
    record_attempt(out);
    if (a.success || out.stop || !should_try_next_model(a) || i + 1 == count)
      break; // `finish` writes the record
    write_status("running");
    log("[crew] retryable model error; trying the next model\n");
  }
}

/// Makes the attempt `out` the latest one of the result.
void pi_run::record_attempt(attempt_outcome& out) {
  const auto& a = out.attempt;
  result_.model_attempts.push_back(out.attempt);
  result_.exit_code = a.exit_code;
  result_.signal = out.signal;
  result_.ok = a.success;
  result_.error = a.error;
  result_.text = std::move(out.text);
  if (!a.success && !out.stop && plan_.candidates.empty())
    // pi fell back to its own default model, which failed: say what to
    // set (pi-crew passes no model either; crew doctor warns about it).
    result_.error += "; agent " + (job_.agent.empty() ? job_.role : job_.agent)
                     + " has no model: set `model:` in its agent file, or a "
                       "default model in pi's settings.json";
}

void pi_run::fail_early(std::string error, int exit_code) {
  log("[crew] " + error + "\n");
  model_attempt a;
  a.model = plan_.candidates.empty() ? std::string{} : plan_.candidates[0];
  a.exit_code = exit_code;
  a.error = error;
  result_.model_attempts.push_back(std::move(a));
  result_.exit_code = exit_code;
  result_.error = std::move(error);
}

void pi_run::finish_attempt(attempt_outcome& out, const pi_stream& stream,
                            const pi_outcome& oc) {
  out.attempt.success = oc.success;
  out.attempt.error = oc.success ? std::string{} : oc.error;
  if (!oc.success && out.attempt.error.empty())
    out.attempt.error = "pi failed without an error message";
  out.text = oc.result;
  add_usage(result_.usage, oc.usage);
  result_.json_events += stream.json_events();
  result_.tool_uses += stream.tool_calls();
}

pi_run::attempt_outcome pi_run::mock_attempt(const std::string& mode,
                                             const std::string& model) {
  attempt_outcome out;
  out.attempt.model = model;
  auto mock = pi_mock(mode, job_.agent, job_.prompt);
  pi_stream stream;
  live_ = &stream;
  on_chunk(stream, mock->stdout_text);
  consume(stream.finish());
  if (!mock->stderr_text.empty())
    log(mock->stderr_text + "\n");
  auto oc = stream.outcome(mock->exit_code, mock->stderr_text);
  out.attempt.exit_code = mock->exit_code;
  finish_attempt(out, stream, oc);
  return out;
}

template <class Exec>
pi_run::attempt_outcome pi_run::real_attempt(const std::string& model,
                                             Exec&& exec) {
  attempt_outcome out;
  out.attempt.model = model;
  uint64_t budget = 0;
  if (!may_start(out, budget))
    return out;
  pi_stream stream;
  live_ = &stream;
  pi_attempt_report report = exec(budget, stream);
  consume(stream.finish());
  log_stderr(report.stderr_text);
  judge_attempt(out, stream, report);
  return out;
}

/// Whether another model may be tried: not after cancel, nor once the task's
/// timeout is spent (then `out` says why). Sets the time left in `budget`
/// (0: no limit).
bool pi_run::may_start(attempt_outcome& out, uint64_t& budget) {
  if (cb_.cancel != nullptr && cb_.cancel->load()) {
    result_.cancelled = true;
    out.attempt.exit_code = -1;
    out.attempt.error = "cancelled";
    out.stop = true;
    return false;
  }
  if (job_.timeout_ms > 0) {
    auto spent = elapsed_ms(started_);
    if (spent >= job_.timeout_ms) {
      result_.timed_out = true;
      out.attempt.exit_code = -1;
      out.attempt.error = "timed out after " + std::to_string(job_.timeout_ms)
                          + " ms before this model could be tried";
      out.stop = true;
      return false;
    }
    budget = job_.timeout_ms - spent;
  }
  return true;
}

void pi_run::log_stderr(const std::string& stderr_text) {
  if (!stderr_text.empty()) {
    log("[crew] stderr:\n" + stderr_text);
    if (stderr_text.back() != '\n')
      log("\n");
  }
}

/// Decides how an attempt that ran went, from its process and its stream.
void pi_run::judge_attempt(attempt_outcome& out, const pi_stream& stream,
                           const pi_attempt_report& report) {
  const auto& proc = report.process;
  const auto& stderr_text = report.stderr_text;
  out.signal = proc.signal;
  out.attempt.exit_code = proc.exit_code;
  if (!proc.spawned) {
    out.attempt.error = "cannot start pi: " + proc.error;
    return;
  }
  // pi-crew's final drain: an answer that arrived is never turned into a
  // failure because pi then hung instead of exiting (or, in rpc mode,
  // ending the prompt). It reports exit code 0.
  bool answered
      = (proc.drained || proc.idle_timed_out) && stream.final_answer_seen();
  int exit_code = proc.exit_code;
  if (answered)
    exit_code = 0;
  else if (proc.signal != 0)
    exit_code = 128 + proc.signal;
  auto oc = stream.outcome(exit_code, stderr_text);
  if (answered) {
    keep_answer(out, report);
  } else if (proc.timed_out || proc.idle_timed_out || proc.cancelled) {
    stopped_attempt(oc, report);
    out.stop = true;
  } else if (!oc.success && !report.failure.empty()
             && stream.error_message().empty()) {
    oc.error = report.failure;
    add_stderr_tail(oc.error, stderr_text);
  } else if (!oc.success && proc.signal != 0
             && oc.error.starts_with("pi exited with code")) {
    oc.error = "pi " + proc.error;
  }
  finish_attempt(out, stream, oc);
}

/// pi delivered its final answer, then hung and was terminated: the answer
/// stands, with exit code 0.
void pi_run::keep_answer(attempt_outcome& out,
                         const pi_attempt_report& report) {
  const auto& proc = report.process;
  if (proc.drained)
    log("[crew] pi did not finish within " + std::to_string(drain_ms_)
        + " ms of its final answer (final drain) and was terminated ("
        + (!report.watchdog_action.empty() ? report.watchdog_action
           : proc.signal != 0              ? signal_name(proc.signal)
                              : "exit code " + std::to_string(proc.exit_code))
        + "); the answer stands\n");
  else
    log("[crew] pi hung after its final answer and was terminated; the "
        "answer stands\n");
  result_.drained = result_.drained || proc.drained;
  out.attempt.exit_code = 0;
  out.signal = 0;
}

/// The task's timeout, the response watchdog or cancel ended the attempt:
/// the result records which, and `oc` fails with it.
void pi_run::stopped_attempt(pi_outcome& oc, const pi_attempt_report& report) {
  const auto& proc = report.process;
  result_.timed_out = result_.timed_out || proc.timed_out;
  result_.idle_timed_out = result_.idle_timed_out || proc.idle_timed_out;
  result_.cancelled = result_.cancelled || proc.cancelled;
  oc.success = false;
  if (proc.idle_timed_out)
    oc.error = "pi produced no output for "
               + std::to_string(job_.response_timeout_ms)
               + " ms (response watchdog); "
               + (report.watchdog_action.empty()
                      ? std::string{"process terminated as unresponsive"}
                      : report.watchdog_action);
  else if (proc.timed_out)
    oc.error = "pi timed out after " + std::to_string(job_.timeout_ms) + " ms";
  else
    oc.error = "cancelled";
  add_stderr_tail(oc.error, report.stderr_text);
}

pi_attempt_report pi_run::spawn_attempt(const pi_command& cmd,
                                        const std::string& system_prompt_file,
                                        const std::string& model,
                                        uint64_t budget, pi_stream& stream) {
  auto options = pi_job_options(job_, pi_output_mode::json, model);
  options.system_prompt_file = system_prompt_file;
  process_spec spec;
  spec.argv = cmd.argv;
  for (auto& arg : pi_args(options))
    spec.argv.push_back(std::move(arg));
  spec.cwd = job_.cwd;
  spec.env = child_env_;
  spec.stdin_data = job_.prompt;
  spec.timeout_ms = budget;
  spec.idle_timeout_ms = job_.response_timeout_ms;
  spec.final_drain_ms = drain_ms_;
  spec.kill_grace_ms = job_.kill_grace_ms;
  log("[crew] command: " + detail::shell_command(spec.argv) + " < prompt ("
      + std::to_string(job_.prompt.size()) + " bytes on stdin)\n");

  process_callbacks pcb;
  pcb.on_spawn = cb_.on_spawn;
  pcb.cancel = cb_.cancel;
  pcb.on_stdout = [&](std::string_view chunk) { on_chunk(stream, chunk); };
  pcb.answered = [&] { return stream.final_answer_seen(); };
  tail_buffer stderr_tail{max_logged_stderr};
  pcb.on_stderr = [&](std::string_view chunk) { stderr_tail.append(chunk); };
  pi_attempt_report report;
  report.process = run_process(spec, pcb);
  report.stderr_text = stderr_tail.take();
  return report;
}

// -- live files ---------------------------------------------------------------

void pi_run::open_files() {
  transcript_.open(job_.transcript_path, false);
  log_.open(job_.log_path, true);
  if (job_.agent_dir.empty())
    return;
  status_.open(agent_file("status.json"));
  auto events = agent_file("events.jsonl");
  seq_ = count_lines(events);
  events_.open(events, false);
  output_.open(agent_file("output.log"), false);
}

void pi_run::on_chunk(pi_stream& stream, std::string_view chunk) {
  consume(stream.feed(chunk));
  if (cb_.on_activity)
    cb_.on_activity();
  maybe_write_status();
}

void pi_run::consume(const std::vector<pi_line>& lines) {
  if (lines.empty())
    return;
  std::string transcript, events, output;
  auto now = std::chrono::system_clock::now();
  for (const auto& line : lines) {
    if (!line.compact.empty()) {
      transcript += line.compact;
      transcript += '\n';
    }
    if (line.json && !line.compact.empty()) {
      events += "{\"seq\":" + std::to_string(++seq_) + ",\"time\":\"";
      append_iso_time(events, now);
      events += "\",\"event\":" + line.compact + "}\n";
    }
    if (line.display.empty())
      continue;
    output += line.display;
    output += '\n';
    remember_output(line.display);
  }
  transcript_.write(transcript);
  events_.write(events);
  output_.write(output);
  last_activity_at_ = iso_time(now);
}

/// Keeps the last 10 lines of one event's display text in the progress.
void pi_run::remember_output(std::string_view display) {
  std::vector<std::string_view> parts;
  std::string_view rest{display};
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    auto part = rest.substr(0, nl);
    if (!part.empty())
      parts.push_back(part);
    if (nl == std::string_view::npos)
      break;
    rest.remove_prefix(nl + 1);
  }
  auto first = parts.size() > max_lines_per_event
                   ? parts.size() - max_lines_per_event
                   : 0;
  for (size_t i = first; i < parts.size(); ++i) {
    recent_output_.emplace_back(parts[i]);
    if (recent_output_.size() > max_recent_output)
      recent_output_.pop_front();
  }
}

void pi_run::maybe_write_status() {
  if (clock_type::now() - last_status_ >= status_interval)
    write_status("running");
}

json pi_run::status_json(std::string_view status) const {
  json rec;
  add_identity(rec, status);
  // Finished attempts plus the one in flight.
  auto usage = result_.usage;
  auto tools = result_.tool_uses;
  auto events = result_.json_events;
  if (live_ != nullptr) {
    add_usage(usage, live_->usage());
    tools += live_->tool_calls();
    events += live_->json_events();
  }
  rec["toolUses"] = tools;
  rec["jsonEvents"] = events;
  if (live_ != nullptr)
    rec["model"] = live_model_.empty() ? "default" : live_model_;
  else if (!result_.model_attempts.empty())
    rec["model"] = route_result(plan_, result_.model_attempts).resolved;
  if (!result_.model_attempts.empty())
    rec["routing"] = json::parse(
        model_routing_json(route_result(plan_, result_.model_attempts)));
  rec["usage"] = usage_json(usage);
  rec["progress"] = progress_json(tools);
  if ((status == "failed" || status == "cancelled") && !result_.error.empty())
    rec["error"] = result_.error;
  return rec;
}

/// The record's head: who runs, its status and times, and its files.
void pi_run::add_identity(json& rec, std::string_view status) const {
  rec["id"] = job_.run_id + ":" + job_.task_id;
  rec["runId"] = job_.run_id;
  rec["taskId"] = job_.task_id;
  rec["agent"] = job_.agent;
  rec["role"] = job_.role;
  rec["runtime"] = "child-process";
  rec["status"] = status;
  rec["startedAt"] = started_at_;
  if (!completed_at_.empty())
    rec["completedAt"] = completed_at_;
  if (result_written_)
    rec["resultArtifactPath"] = job_.result_path;
  if (!job_.transcript_path.empty())
    rec["transcriptPath"] = job_.transcript_path;
  else if (!job_.log_path.empty())
    rec["transcriptPath"] = job_.log_path;
  rec["statusPath"] = agent_file("status.json");
  rec["eventsPath"] = agent_file("events.jsonl");
  rec["outputPath"] = agent_file("output.log");
}

/// The record's `progress`, with `tools` tool calls so far.
json pi_run::progress_json(uint64_t tools) const {
  json progress;
  if (live_ != nullptr && !live_->current_tool().empty())
    progress["currentTool"] = live_->current_tool();
  progress["toolCount"] = tools;
  progress["recentOutput"] = recent_output_;
  if (!last_activity_at_.empty())
    progress["lastActivityAt"] = last_activity_at_;
  progress["durationMs"] = elapsed_ms(started_);
  return progress;
}

void pi_run::write_status(std::string_view status) {
  last_status_ = clock_type::now();
  if (job_.agent_dir.empty())
    return;
  status_.write(
      status_json(status).dump(2, ' ', false, json::error_handler_t::replace)
      + "\n");
}

// -- end ----------------------------------------------------------------------

/// Writes the result file and the last record and log lines; returns the
/// result.
pi_result pi_run::finish() {
  result_.routing = route_result(plan_, result_.model_attempts);
  write_result_file();
  result_.duration_ms = elapsed_ms(started_);
  completed_at_ = iso_now();
  log(summary());
  write_status(result_.ok ? "completed"
                          : (result_.cancelled ? "cancelled" : "failed"));
  status_.close();
  return std::move(result_);
}

/// Writes the answer of a success to `job_.result_path`, or removes a stale
/// one after a failure.
void pi_run::write_result_file() {
  if (result_.ok && !job_.result_path.empty()) {
    try {
      write_file_atomic(job_.result_path, result_.text, false);
      result_written_ = true;
    } catch (const std::exception& e) {
      result_.ok = false;
      result_.error = std::string{"cannot write the result file: "} + e.what();
    }
  } else if (!result_.ok && !job_.result_path.empty()) {
    // A stale answer from an earlier run must not pass for this one's.
    std::error_code ec;
    fs::remove(job_.result_path, ec);
  }
}

/// The log's last lines: how the task ended, its model and usage.
std::string pi_run::summary() const {
  const auto& u = result_.usage;
  return "[crew] " + std::string{result_.ok ? "completed" : "failed"} + " at "
         + completed_at_ + ": model=" + result_.routing.resolved
         + " exitCode=" + std::to_string(result_.exit_code) + " jsonEvents="
         + std::to_string(result_.json_events) + " usage input="
         + std::to_string(u.input) + " output=" + std::to_string(u.output)
         + " cacheRead=" + std::to_string(u.cache_read) + " cacheWrite="
         + std::to_string(u.cache_write) + " cost=" + std::to_string(u.cost)
         + " turns=" + std::to_string(u.turns)
         + " durationMs=" + std::to_string(result_.duration_ms)
         + (result_.ok ? "" : "\n[crew] error: " + result_.error) + "\n";
}

} // namespace

pi_arg_options pi_job_options(const pi_job& job, pi_output_mode mode,
                              const std::string& model) {
  return pi_arg_options{.mode = mode,
                        .model = model,
                        .thinking = job.thinking,
                        .tools = job.tools,
                        .extensions = std::nullopt,
                        .inherit_skills = job.inherit_skills,
                        .inherit_project_context = job.inherit_project_context,
                        .system_prompt_file = {}, // each backend writes its own
                        .replace_system_prompt = job.replace_system_prompt};
}

std::string pi_result::details_json() const {
  json out;
  if (!routing.resolved.empty())
    out["model"] = routing.resolved;
  out["modelAttempts"] = json::parse(model_attempts_json(model_attempts));
  out["modelRouting"] = json::parse(model_routing_json(routing));
  out["usage"] = usage_json(usage);
  out["jsonEvents"] = json_events;
  return dump(out);
}

pi_result run_pi_attempt(const pi_job& job, const pi_callbacks& cb) {
  return pi_run{job, cb}.run();
}

pi_result run_pi_attempt_with(const pi_job& job, const pi_callbacks& cb,
                              const pi_attempt_backend& backend) {
  return pi_run{job, cb, &backend}.run();
}

} // namespace crew
