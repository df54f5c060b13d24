#include "runtime/workers/pi/pi_rpc_conversation.hpp"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <sys/stat.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "runtime/workers/pi/pi_rpc_process.hpp"

namespace crew::pi_rpc {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Without a cancel flag, waits last until output, the exit or the next
// deadline (at most `idle_slice`).
constexpr auto idle_slice = milliseconds{1000};
constexpr auto abort_wait = milliseconds{2000};
// After an agent_end with stopReason error, pi may still start an automatic
// retry (`auto_retry_start` right after agent_end); wait that long for it.
constexpr auto retry_settle = milliseconds{250};
constexpr uint64_t control_limit_ms = 60000; // without a response watchdog
// pi prints events with `type` first and responses with `id` first.
constexpr std::string_view event_prefix = R"({"type":")";
constexpr std::string_view id_prefix = R"({"id":)";

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

// -- one model attempt on one process -----------------------------------------

/// The protocol of one attempt: `new_session`, then `prompt` until
/// `agent_end` (the process was started with the attempt's model), with the
/// response watchdog, the task's deadline and cancel turning into an `abort`.
class conversation {
public:
  conversation(worker& w, const pi_attempt_request& req, const pi_callbacks& cb,
               clock_type::time_point deadline, pi_attempt_report& rep)
      : w_(w), req_(req), cb_(cb), deadline_(deadline), rep_(rep) {
    // nop
  }

  /// Runs the attempt; false when the process must be replaced.
  bool run();

private:
  /// Where the prompt is: waiting for its `agent_end`, waiting whether pi
  /// retries after an error, or waiting for pi to finish an abort.
  enum class phase { running, settling, aborting };

  /// The prompt in flight.
  struct prompt_state {
    std::string id;
    phase ph = phase::running;
    clock_type::time_point settle_until;
    clock_type::time_point abort_until;
    // After an abort, both its agent_end and its response must arrive before
    // the process may take the next command.
    std::string abort_id;
    bool abort_answered = false;
    bool ended = false;
    // The final drain: the final answer arrived but agent_end did not follow
    // within `final_drain_ms`. The prompt is aborted and the answer stands,
    // so what pi prints after the drain (the aborted turn) no longer reaches
    // the stream.
    bool drain_armed = false;
    clock_type::time_point drain_until;
  };

  std::optional<json> command(json cmd, const std::string& name);
  bool prompt();
  std::optional<bool> check_prompt(prompt_state& p, clock_type::time_point now);
  void abort_prompt(prompt_state& p, clock_type::time_point now);
  clock_type::duration prompt_wait(const prompt_state& p,
                                   clock_type::time_point now) const;
  bool on_prompt_line(prompt_state& p, std::string_view line);
  void forward(std::string_view line);
  bool cancelled() const {
    return cb_.cancel != nullptr && cb_.cancel->load(std::memory_order_relaxed);
  }
  bool silent_for(milliseconds limit, clock_type::time_point now);
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
  void record_status();
  milliseconds grace() const { return milliseconds{req_.job.kill_grace_ms}; }
  milliseconds drain() const { return milliseconds{req_.final_drain_ms}; }

  worker& w_;
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
    auto wait = std::min<clock_type::duration>({clock_type::duration{slice()},
                                                deadline_ - now,
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

/// Sends the task's prompt and waits until it is over: `agent_end` (after
/// any automatic retries), a refusal, or the end of an abort. False when the
/// process must be replaced.
bool conversation::prompt() {
  prompt_state p;
  p.id = "crew-" + std::to_string(++w_.next_id);
  ++w_.prompts;
  send_line(
      w_, json{{"id", p.id}, {"type", "prompt"}, {"message", req_.job.prompt}});
  last_output_ = clock_type::now();
  auto on_line = [&](std::string_view line) { return on_prompt_line(p, line); };
  for (;;) {
    auto now = clock_type::now();
    if (auto over = check_prompt(p, now))
      return *over;
    auto wait = prompt_wait(p, now);
    auto r = step(w_, std::chrono::ceil<milliseconds>(wait), on_line);
    if (r.output)
      last_output_ = clock_type::now();
    if (r.done) {
      if (p.ph == phase::aborting && !rep_.process.drained)
        rep_.process.exit_code = -1;
      return true;
    }
    if (!p.drain_armed && drain().count() > 0 && p.ph == phase::running
        && req_.stream.final_answer_seen()) {
      p.drain_armed = true;
      p.drain_until = clock_type::now() + drain();
    }
    if (r.eof) {
      exited("during the prompt");
      return false;
    }
  }
}

/// What the clock and the cancel flag say about the prompt: the settling
/// ends, a limit that ran out aborts the prompt, pi that ignored the abort
/// is killed. A value when the prompt is over: whether the process stays.
std::optional<bool> conversation::check_prompt(prompt_state& p,
                                               clock_type::time_point now) {
  if (p.ph == phase::settling && now >= p.settle_until)
    return true;
  if (p.ph == phase::running) {
    auto& proc = rep_.process;
    const auto rt = req_.job.response_timeout_ms;
    if (cancelled())
      proc.cancelled = true;
    else if (now >= deadline_)
      proc.timed_out = true;
    else if (p.drain_armed && now >= p.drain_until)
      proc.drained = true;
    else if (rt > 0 && silent_for(milliseconds{rt}, now))
      proc.idle_timed_out = true;
    if (proc.cancelled || proc.timed_out || proc.idle_timed_out || proc.drained)
      abort_prompt(p, now);
  } else if (p.ph == phase::aborting && now >= p.abort_until) {
    rep_.watchdog_action = "prompt aborted, but pi did not finish within "
                           + std::to_string(abort_wait.count())
                           + " ms; process killed";
    req_.log("[crew] rpc: pi ignored the abort; killing process "
             + std::to_string(w_.pid) + "\n");
    kill(grace());
    return false;
  }
  return std::nullopt;
}

/// Sends `abort` after cancel or a limit (which `rep_.process` names) and
/// logs why.
void conversation::abort_prompt(prompt_state& p, clock_type::time_point now) {
  const auto& proc = rep_.process;
  p.abort_id = "crew-" + std::to_string(++w_.next_id);
  send_line(w_, json{{"id", p.abort_id}, {"type", "abort"}});
  p.ph = phase::aborting;
  p.abort_until = now + abort_wait;
  if (!proc.drained)
    rep_.process.exit_code = -1;
  rep_.watchdog_action = "prompt aborted";
  req_.log(std::string{"[crew] rpc: "}
           + (proc.cancelled   ? "cancelled"
              : proc.timed_out ? "task timed out"
              : proc.drained
                  ? "no agent_end within " + std::to_string(drain().count())
                        + " ms of the final answer (final drain)"
                  : "response watchdog fired")
           + "; aborting the prompt\n");
}

/// How long the prompt may wait for output before something is due.
clock_type::duration
conversation::prompt_wait(const prompt_state& p,
                          clock_type::time_point now) const {
  clock_type::duration wait = slice();
  const auto rt = req_.job.response_timeout_ms;
  if (p.ph == phase::running) {
    if (deadline_ > now)
      wait = std::min<clock_type::duration>(wait, deadline_ - now);
    if (rt > 0)
      wait = std::min<clock_type::duration>(wait, last_output_
                                                      + milliseconds{rt} - now);
    if (p.drain_armed)
      wait = std::min<clock_type::duration>(wait, p.drain_until - now);
  } else if (p.ph == phase::settling) {
    wait = std::min<clock_type::duration>(wait, p.settle_until - now);
  } else {
    wait = std::min<clock_type::duration>(wait, p.abort_until - now);
  }
  return std::max<clock_type::duration>(wait, clock_type::duration::zero());
}

/// Handles one stdout line during the prompt; true when the prompt is over.
bool conversation::on_prompt_line(prompt_state& p, std::string_view line) {
  auto info = classify(line);
  if (info.response) {
    if (!p.abort_id.empty() && info.id == p.abort_id) {
      p.abort_answered = true;
      return p.ended;
    }
    // Only a refused prompt matters (pi then sends no agent_end); the
    // stream records its error. Other responses are stale.
    if (info.id != p.id || info.success)
      return false;
    forward(line);
    return true;
  }
  forward(line);
  if (info.type == "agent_end") {
    if (p.ph == phase::aborting) {
      p.ended = true;
      return p.abort_answered;
    }
    if (p.ph == phase::running && req_.stream.stop_reason() == "error") {
      p.ph = phase::settling;
      p.settle_until = clock_type::now() + retry_settle;
      return false;
    }
    return true;
  }
  if (info.type == "auto_retry_start" && p.ph == phase::settling)
    p.ph = phase::running;
  if (info.type == "auto_retry_end" && p.ph != phase::running
      && !succeeded(info.body)) {
    // Retries gave up (or were aborted while sleeping): the prompt is over.
    p.ended = true;
    return p.ph == phase::settling || p.abort_answered;
  }
  return false;
}

/// Passes a line of the prompt on to the stream, unless the final drain
/// ended the prompt.
void conversation::forward(std::string_view line) {
  if (rep_.process.drained)
    return;
  std::string chunk{line};
  chunk += '\n';
  req_.on_stdout(chunk);
}

/// Whether pi wrote nothing to stdout or stderr for `limit`. stderr is a
/// file, not a pipe: it is only looked at once stdout has been quiet that
/// long, so that waiting needs no periodic wake-ups.
bool conversation::silent_for(milliseconds limit, clock_type::time_point now) {
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
    auto at = now
              - std::chrono::duration_cast<clock_type::duration>(
                  std::max(age, decltype(age)::zero()));
    last_output_ = std::max(last_output_, std::min(at, now));
  }
  return now - last_output_ >= limit;
}

void conversation::record_status() {
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

void conversation::exited(const std::string& when) {
  // stdout closed: pi is exiting; give it a moment, then make sure.
  wait_exits({&w_}, clock_type::now() + milliseconds{1000});
  kill(grace());
  rep_.failure = "pi rpc process " + std::to_string(w_.pid) + " exited " + when
                 + " (" + rep_.process.error + ")";
  req_.log("[crew] rpc: " + rep_.failure + "\n");
}

} // namespace

bool run_conversation(worker& w, const pi_attempt_request& req,
                      const pi_callbacks& cb, clock_type::time_point deadline,
                      pi_attempt_report& rep) {
  conversation talk{w, req, cb, deadline, rep};
  return talk.run();
}

} // namespace crew::pi_rpc
