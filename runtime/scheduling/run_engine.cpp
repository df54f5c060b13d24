#include "runtime/scheduling/run_engine.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "observability/metrics.hpp"
#include "store/event_log.hpp"
#include "store/clock.hpp"
#include "store/json_writer.hpp"

namespace crew {

namespace {

constexpr std::string_view manual_deadletter_text = "Deadlettered by hand.";

int64_t unix_ms(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  return duration_cast<milliseconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_unix_ms(int64_t ms) {
  return time_of_unix_ms(ms); // clamped: the ms may come from checkpoint.bin
}

/// Milliseconds from `now` until a retry is due, in [0, 100 years]: the due
/// time comes from the log or checkpoint.bin and may be any int64, and the
/// run actor turns the wait into nanoseconds.
uint64_t wait_until_ms(int64_t due_ms, std::chrono::system_clock::time_point now) {
  constexpr int64_t max_wait_ms = int64_t{100} * 365 * 24 * 3600 * 1000;
  int64_t left = 0;
  if (__builtin_sub_overflow(due_ms, unix_ms(now), &left))
    left = due_ms > 0 ? max_wait_ms : 0;
  return static_cast<uint64_t>(std::clamp<int64_t>(left, 0, max_wait_ms));
}

/// Event times are kept at millisecond precision so that a replay of the log
/// reproduces exactly the timestamps held in memory.
std::chrono::system_clock::time_point now_ms() {
  return from_unix_ms(unix_ms(std::chrono::system_clock::now()));
}

int64_t steady_ns() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch())
    .count();
}

} // namespace

run_engine::run_engine(std::string run_id, const std::vector<planned_task>& plan,
                       uint64_t last_seq, engine_options opts)
  : run_id_(std::move(run_id)),
    ids_(correlation::for_run(run_id_)),
    plan_(&plan),
    opts_(std::move(opts)),
    tasks_(plan.size()),
    seq_(last_seq),
    durable_(last_seq) {
  if (opts_.max_concurrent == 0)
    opts_.max_concurrent = 1;
  index_dependents();
  open_ = static_cast<uint32_t>(plan.size());
  counts_[static_cast<int>(task_status::queued)] = open_;
}

void run_engine::index_dependents() {
  // Dependents in one flat array (CSR): a 500,000-task fan-out would
  // otherwise allocate a vector per task.
  auto& plan = *plan_;
  dependents_at_.assign(plan.size() + 1, 0);
  for (auto& p : plan)
    for (auto dep : p.deps)
      ++dependents_at_[dep + 1];
  for (size_t i = 1; i < dependents_at_.size(); ++i)
    dependents_at_[i] += dependents_at_[i - 1];
  dependents_.resize(dependents_at_.back());
  auto fill = dependents_at_;
  for (uint32_t i = 0; i < plan.size(); ++i)
    for (auto dep : plan[i].deps)
      dependents_[fill[dep]++] = i;
}

void run_engine::inject(const std::vector<planned_task>& plan,
                        std::vector<uint32_t> max_attempts,
                        std::string_view message, std::string_view data) {
  adaptive_pending_ = false;
  adaptive_done_ = true;
  if (done() || cancelling_ || plan.size() < tasks_.size())
    return maybe_finish();
  auto first = static_cast<uint32_t>(tasks_.size());
  plan_ = &plan;
  opts_.max_attempts = std::move(max_attempts);
  tasks_.resize(plan.size());
  index_dependents();
  auto added = static_cast<uint32_t>(plan.size()) - first;
  open_ += added;
  counts_[static_cast<int>(task_status::queued)] += added;
  auto now = now_ms();
  emit("adaptive.plan_injected", no_task, message, data, now);
  // Dependencies on tasks of the plan before are durably completed (the
  // planner's task released the injection); the others are new, queued.
  auto ns = steady_ns();
  for (uint32_t i = first; i < tasks_.size(); ++i) {
    uint32_t remaining = 0;
    for (auto dep : plan[i].deps)
      if (tasks_[dep].status != task_status::completed)
        ++remaining;
    tasks_[i].remaining_deps = remaining;
    if (remaining == 0)
      make_ready(i, ns);
  }
  maybe_finish();
}

void run_engine::adaptive_blocked(std::string_view summary) {
  adaptive_pending_ = false;
  adaptive_done_ = true;
  if (done())
    return;
  if (!cancelling_) {
    blocked_ = true;
    blocked_summary_ = summary;
    auto now = now_ms();
    for (uint32_t i = 0; i < tasks_.size(); ++i)
      if (tasks_[i].status == task_status::queued)
        finish_task(i, task_status::skipped, summary, {}, now);
    ready_.clear();
  }
  maybe_finish();
}

void run_engine::load_states(const std::vector<task_state>& states) {
  load_checkpoint(make_checkpoint(states));
}

void run_engine::load_checkpoint(const run_checkpoint& ck) {
  status_ = ck.status;
  summary_ = ck.summary;
  loaded_stop_ = ck.stop;
  for (auto& c : counts_)
    c = 0;
  open_ = 0;
  auto n = std::min(tasks_.size(), ck.tasks.size());
  for (uint32_t i = 0; i < n; ++i) {
    auto& t = tasks_[i];
    auto& c = ck.tasks[i];
    t.status = c.status;
    t.attempt = c.attempts;
    t.exit_code = c.exit_code;
    t.has_exit_code = c.has_exit_code;
    t.started_ms = c.started_ms;
    t.finished_ms = c.finished_ms;
    // A failed attempt waiting for its retry when the previous owner
    // stopped: the schedule goes on from the log (see start()).
    if (c.status == task_status::running && c.waiting) {
      t.waiting = true;
      t.retry_due_ms = c.retry_due_ms;
    }
    if (c.worker_pid != 0)
      workers_[i] = {c.attempts, c.worker_pid, c.worker_start};
  }
  for (auto& [i, e] : ck.errors)
    if (i < n)
      errors_[i] = e;
  for (auto& [i, d] : ck.details)
    if (i < n)
      details_[i] = d;
  for (auto& [i, h] : ck.history) {
    if (i >= n)
      continue;
    auto& out = history_[i];
    for (auto& a : h)
      out.push_back({a.started_ms, a.ended_ms, a.error});
  }
  for (auto& t : tasks_) {
    ++counts_[static_cast<int>(t.status)];
    if (!is_terminal(t.status))
      ++open_;
  }
}

run_checkpoint run_engine::checkpoint() const {
  run_checkpoint ck;
  ck.seq = seq_;
  ck.status = status_;
  ck.summary = summary_;
  if (cancelling_)
    ck.stop = {expired_ ? stop_kind::expire : stop_kind::cancel, stop_reason_,
               stop_seq_};
  ck.tasks.resize(tasks_.size());
  for (uint32_t i = 0; i < tasks_.size(); ++i) {
    auto& t = tasks_[i];
    auto& c = ck.tasks[i];
    c.status = t.status;
    c.has_exit_code = t.has_exit_code;
    // Between attempts, as a replay of the log sees it (a retry whose timer
    // fired but that was not dispatched yet is still waiting on disk).
    c.waiting = t.status == task_status::running && (t.waiting || t.retry_ready);
    c.retry_due_ms = c.waiting ? t.retry_due_ms : 0;
    c.attempts = t.attempt;
    c.exit_code = t.exit_code;
    c.started_ms = t.started_ms;
    c.finished_ms = t.finished_ms;
  }
  for (auto& [i, w] : workers_)
    if (tasks_[i].status == task_status::running && tasks_[i].attempt == w.attempt
        && !ck.tasks[i].waiting) {
      ck.tasks[i].worker_pid = w.pid;
      ck.tasks[i].worker_start = w.start;
    }
  ck.errors.reserve(errors_.size());
  for (auto& [i, e] : errors_)
    ck.errors.emplace_back(i, e);
  std::sort(ck.errors.begin(), ck.errors.end());
  for (auto& [i, h] : history_) {
    if (h.empty())
      continue;
    auto& out = ck.history.emplace_back(i, std::vector<attempt_checkpoint>{}).second;
    for (auto& a : h)
      out.push_back({a.started_ms, a.ended_ms, a.error});
  }
  std::sort(ck.history.begin(), ck.history.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  ck.details.reserve(details_.size());
  for (auto& [i, d] : details_)
    ck.details.emplace_back(i, d);
  std::sort(ck.details.begin(), ck.details.end());
  return ck;
}

void run_engine::emit(std::string_view type, uint32_t task,
                      std::string_view message, std::string_view data,
                      clock::time_point now, span_level level) {
  event_fields ev;
  ev.type = type;
  ev.run_id = run_id_;
  if (task != no_task)
    ev.task_id = (*plan_)[task].id;
  ev.message = message;
  ev.data_json = data;
  ev.seq = ++seq_;
  ev.time = now;
  ev.trace_hi = ids_.trace_hi;
  ev.trace_lo = ids_.trace_lo;
  if (task == no_task || level == span_level::run) {
    ev.span_id = ids_.run_span;
  } else if (level == span_level::task || tasks_[task].attempt == 0) {
    ev.span_id = ids_.task_span(task);
    ev.parent_span_id = ids_.run_span;
  } else {
    ev.span_id = ids_.attempt_span(task, tasks_[task].attempt);
    ev.parent_span_id = ids_.task_span(task);
  }
  append_event_line(buf_, ev);
}

bool run_engine::worker_started(uint32_t index, uint32_t attempt, int32_t pid,
                                uint64_t start_time) {
  if (index >= tasks_.size())
    return false;
  auto& t = tasks_[index];
  if (t.status != task_status::running || t.attempt != attempt)
    return false;
  workers_[index] = {attempt, pid, start_time};
  auto data = fmt::format(R"({{"attempt":{},"pid":{},"startTime":{}}})", attempt,
                          pid, start_time);
  emit("task.worker", index, {}, data, now_ms(), span_level::attempt);
  return true;
}

void run_engine::record(std::string_view type, std::string_view message,
                        std::string_view data) {
  emit(type, no_task, message, data, now_ms());
}

std::string run_engine::take_events() {
  std::string out;
  out.swap(buf_);
  buf_.reserve(out.capacity() / 2);
  return out;
}

void run_engine::emit_run_status(run_status st, std::string_view summary) {
  status_ = st;
  summary_ = std::string{summary};
  if (opts_.notes) {
    event_note n;
    n.kind = note_kind::run_status;
    n.status = static_cast<uint8_t>(st);
    n.value = static_cast<uint64_t>(unix_ms(now_ms()));
    notes_.push_back(n);
  }
  scratch_.clear();
  fmt::format_to(std::back_inserter(scratch_), "run.{}", to_string(st));
  auto type = scratch_;
  emit(type, no_task, summary, {}, now_ms());
}

void run_engine::requeue(uint32_t i, clock::time_point now,
                         std::string_view message) {
  auto& t = tasks_[i];
  workers_.erase(i);
  auto& hist = history_[i];
  if (t.attempt > hist.size() && t.started_ms != 0 && !t.waiting) {
    // The last attempt lived in the task's own fields, which the requeue
    // clears: keep it, ended by the crash (as replay sees it) or as it ended.
    bool ended = is_terminal(t.status);
    hist.push_back({t.started_ms, ended ? t.finished_ms : unix_ms(now),
                    ended ? std::string{error_of(i)} : std::string{message}});
  } else if (!hist.empty() && hist.back().ended_ms == 0) {
    // An attempt cut off by a crash ends here, as replay sees it.
    hist.back().ended_ms = unix_ms(now);
    hist.back().error = std::string{message};
  }
  scratch_.clear();
  fmt::format_to(std::back_inserter(scratch_), R"({{"previousStatus":"{}"}})",
                 to_string(t.status));
  auto data = scratch_;
  --counts_[static_cast<int>(t.status)];
  ++counts_[static_cast<int>(task_status::queued)];
  if (is_terminal(t.status))
    ++open_;
  t.status = task_status::queued;
  t.started_ms = t.finished_ms = 0;
  t.has_exit_code = false;
  t.exit_code = 0;
  errors_.erase(i);
  details_.erase(i);
  emit("task.requeued", i, message, data, now, span_level::task);
}

void run_engine::start(std::string_view summary, bool resume) {
  auto now = now_ms();
  // run.running first: on a resume it withdraws a stop the log holds (the
  // user's new decision), so no crash leaves requeues behind a stop.
  emit_run_status(run_status::running, summary);
  if (resume) {
    // Every task that did not complete runs again (interrupted attempts
    // included): at-least-once execution, one terminal state per task.
    for (uint32_t i = 0; i < tasks_.size(); ++i) {
      auto& t = tasks_[i];
      if (t.status == task_status::completed || t.status == task_status::queued)
        continue;
      if (t.waiting) {
        // Not interrupted: in backoff. Resume the schedule from the log.
        ++waiting_;
        retries_.emplace_back(i, wait_until_ms(t.retry_due_ms, now));
        continue;
      }
      requeue(i, now, "Requeued by resume.");
    }
  }
  begin(summary, false);
}

void run_engine::start_recovered(std::string_view summary,
                                 uint64_t checkpoint_seq) {
  auto now = now_ms();
  auto from = seq_;
  // The log asks for a stop: the dead owner was cancelling (or expiring) the
  // run. Recovery finishes that stop, it never runs the tasks again.
  bool stopping = loaded_stop_.requested();
  std::vector<uint32_t> interrupted;
  for (uint32_t i = 0; i < tasks_.size(); ++i) {
    auto& t = tasks_[i];
    if (t.status != task_status::running)
      continue;
    if (t.waiting) {
      ++waiting_;
      if (!stopping)
        retries_.emplace_back(i, wait_until_ms(t.retry_due_ms, now));
      continue;
    }
    interrupted.push_back(i);
  }
  emit("crew.run.resumed", no_task,
       stopping ? std::string_view{"Recovered after the owning process died; "
                                   "finishing its stop."}
                : std::string_view{"Recovered after the owning process died."},
       fmt::format(R"({{"recoveredFromSeq":{},"resumableTasks":{},)"
                   R"("checkpointSeq":{}{}}})",
                   from, stopping ? 0 : interrupted.size(), checkpoint_seq,
                   stopping ? fmt::format(R"(,"stopSeq":{})", loaded_stop_.seq)
                            : std::string{}),
       now);
  if (opts_.notes) {
    event_note n;
    n.kind = note_kind::run_resumed;
    notes_.push_back(n);
  }
  if (stopping) {
    // No run.running: a replay keeps the intent (only a resume withdraws
    // it), so a crash of this recovery is recovered the same way.
    cancelling_ = true;
    expired_ = loaded_stop_.kind == stop_kind::expire;
    stop_reason_ = loaded_stop_.reason;
    stop_seq_ = loaded_stop_.seq;
    adaptive_pending_ = false;
    adaptive_done_ = true;
    std::vector<uint32_t> none; // the orphaned workers were killed already
    end_open_tasks(none, true);
    releases_.clear();
    maybe_finish();
    return;
  }
  for (auto i : interrupted)
    requeue(i, now, "Interrupted attempt requeued by recovery.");
  begin(summary, true);
}

void run_engine::begin(std::string_view summary, bool announce) {
  if (announce)
    emit_run_status(run_status::running, summary);
  // A planner that completed before this start (resume, recovery) whose
  // tasks were never injected: loaded states are durable.
  if (opts_.adaptive_assess < tasks_.size() && !adaptive_done_
      && tasks_[opts_.adaptive_assess].status == task_status::completed)
    adaptive_pending_ = true;
  auto ns = steady_ns();
  for (uint32_t i = 0; i < tasks_.size(); ++i) {
    auto& t = tasks_[i];
    if (t.status != task_status::queued)
      continue;
    uint32_t remaining = 0;
    for (auto dep : (*plan_)[i].deps)
      if (tasks_[dep].status != task_status::completed)
        ++remaining;
    t.remaining_deps = remaining;
    if (remaining == 0)
      make_ready(i, ns);
  }
  // A dependency that already ended without completing (a recovered run
  // that crashed before skipping its dependents) skips them now.
  for (uint32_t i = 0; i < tasks_.size(); ++i) {
    auto st = tasks_[i].status;
    if (st == task_status::failed || st == task_status::skipped
        || st == task_status::cancelled) {
      if (st == task_status::failed && first_failed_.empty())
        first_failed_ = (*plan_)[i].id;
      skip_dependents(i);
    }
  }
  maybe_finish();
}

void run_engine::make_ready(uint32_t index, int64_t now_ns) {
  tasks_[index].ready_ns = now_ns;
  ready_.push_back(index);
}

uint32_t run_engine::max_attempts_of(uint32_t index) const {
  if (index < opts_.max_attempts.size() && opts_.max_attempts[index] > 0)
    return opts_.max_attempts[index];
  return std::max<uint32_t>(1, opts_.retry.max_attempts);
}

void run_engine::deadletter(uint32_t index, std::string_view reason,
                            std::string_view last_error, clock::time_point now) {
  auto& t = tasks_[index];
  std::string data = R"({"reason":)";
  append_json_string(data, reason);
  fmt::format_to(std::back_inserter(data), R"(,"attempts":{},"lastError":)",
                 t.attempt);
  append_json_string(data, last_error);
  data += '}';
  emit("crew.task.deadletter", index, last_error, data, now, span_level::task);
  // deadletter.jsonl: {taskId, runId, reason, attempts, lastError, timestamp,
  // traceId}, appended once the event is durable.
  std::string line = R"({"taskId":)";
  append_json_string(line, (*plan_)[index].id);
  line += R"(,"runId":)";
  append_json_string(line, run_id_);
  line += R"(,"reason":)";
  append_json_string(line, reason);
  fmt::format_to(std::back_inserter(line), R"(,"attempts":{},"lastError":)",
                 t.attempt);
  append_json_string(line, last_error);
  line += R"(,"timestamp":")";
  append_iso_time(line, now);
  line += R"(","traceId":")";
  line += ids_.trace_hex();
  line += "\"}\n";
  deadletters_.emplace_back(seq_, std::move(line));
  if (opts_.notes) {
    event_note n;
    n.kind = note_kind::task_deadletter;
    n.status = reason == "max-retries" ? 1 : reason == "heartbeat-dead" ? 2 : 3;
    n.task = index;
    n.attempt = t.attempt;
    notes_.push_back(n);
  }
}

std::vector<uint32_t> run_engine::deadletter_by_hand(uint32_t index) {
  // After the final run event nothing may follow it in the log.
  if (index >= tasks_.size() || done())
    return {};
  auto& t = tasks_[index];
  auto now = now_ms();
  if (is_terminal(t.status)) {
    auto error = error_of(index);
    deadletter(index, "manual", error.empty() ? manual_deadletter_text : error,
               now);
    return {};
  }
  if (t.status == task_status::running && !t.waiting && !t.retry_ready) {
    t.manual_deadletter = true;
    t.cancel_requested = true; // its result is not the task's outcome
    return {index};
  }
  if (t.status == task_status::running) { // between attempts
    if (t.waiting)
      --waiting_;
    t.waiting = t.retry_ready = false;
    t.retry_due_ms = 0;
    ++running_; // finish_task releases the slot of a running task
  }
  if (first_failed_.empty())
    first_failed_ = (*plan_)[index].id;
  finish_task(index, task_status::failed, manual_deadletter_text, {}, now);
  deadletter(index, "manual", manual_deadletter_text, now);
  return {};
}

void run_engine::heartbeat_dead(uint32_t index, uint32_t attempt,
                                uint64_t elapsed_ms) {
  if (index >= tasks_.size())
    return;
  auto& t = tasks_[index];
  if (t.status != task_status::running || t.attempt != attempt || t.waiting
      || t.retry_ready)
    return;
  emit("crew.task.heartbeat_dead", index,
       fmt::format("No heartbeat for {} ms.", elapsed_ms),
       fmt::format(R"({{"attempt":{},"elapsedMs":{}}})", attempt, elapsed_ms),
       now_ms(), span_level::attempt);
  if (opts_.notes) {
    event_note n;
    n.kind = note_kind::heartbeat_dead;
    n.status = 3;
    n.task = index;
    n.attempt = attempt;
    n.value = elapsed_ms;
    notes_.push_back(n);
  }
}

bool run_engine::heartbeat_deadletter(uint32_t index, uint32_t attempt,
                                      uint64_t elapsed_ms) {
  if (index >= tasks_.size())
    return false;
  auto& t = tasks_[index];
  if (t.status != task_status::running || t.attempt != attempt || t.waiting
      || t.retry_ready || t.heartbeat_killed)
    return false;
  t.heartbeat_killed = true;
  deadletter(index, "heartbeat-dead",
             fmt::format("heartbeat dead: no activity for {} ms", elapsed_ms),
             now_ms());
  return true;
}

void run_engine::retry_due(uint32_t index) {
  if (index >= tasks_.size())
    return;
  auto& t = tasks_[index];
  if (!t.waiting || t.status != task_status::running)
    return;
  t.waiting = false; // retry_due_ms stays: the log still says "waiting"
  --waiting_;
  if (cancelling_ || done())
    return;
  t.retry_ready = true;
  make_ready(index, steady_ns());
}

std::vector<std::pair<uint32_t, uint64_t>> run_engine::take_retries() {
  std::vector<std::pair<uint32_t, uint64_t>> out;
  out.swap(retries_);
  return out;
}

std::string run_engine::take_durable_deadletters() {
  std::string out;
  while (!deadletters_.empty() && deadletters_.front().first <= durable_) {
    out += deadletters_.front().second;
    deadletters_.pop_front();
  }
  return out;
}

std::vector<event_note> run_engine::take_notes() {
  std::vector<event_note> out;
  out.swap(notes_);
  return out;
}

bucketed run_engine::take_dispatch_latency() {
  bucketed out;
  out.counts.resize(default_buckets().size() + 1);
  std::swap(out, dispatch_latency_);
  if (out.counts.empty())
    out.counts.resize(default_buckets().size() + 1);
  return out;
}

void run_engine::next_dispatch(std::vector<uint32_t>& out) {
  if (cancelling_ || done())
    return;
  auto now = now_ms();
  auto ms = unix_ms(now);
  auto ns = steady_ns();
  auto& bounds = default_buckets();
  if (dispatch_latency_.counts.size() != bounds.size() + 1)
    dispatch_latency_.counts.assign(bounds.size() + 1, 0);
  while (!ready_.empty() && running_ < opts_.max_concurrent
         && seq_ - durable_ < opts_.backlog_limit) {
    auto i = ready_.front();
    ready_.pop_front();
    auto& t = tasks_[i];
    if (t.retry_ready && t.status == task_status::running) {
      // The next attempt of a retried task: on disk it stayed running.
      t.retry_ready = false;
    } else if (t.status == task_status::queued) {
      --counts_[static_cast<int>(task_status::queued)];
      ++counts_[static_cast<int>(task_status::running)];
    } else {
      continue;
    }
    if (t.ready_ns != 0) {
      auto lat = static_cast<double>(ns - t.ready_ns) / 1e6;
      auto b = std::lower_bound(bounds.begin(), bounds.end(), lat) - bounds.begin();
      ++dispatch_latency_.counts[static_cast<size_t>(b)];
      dispatch_latency_.sum += lat;
    }
    t.status = task_status::running;
    t.heartbeat_killed = false;
    errors_.erase(i); // a new attempt starts clean, as replay sees it
    ++t.attempt;
    t.started_ms = ms;
    t.finished_ms = 0;
    ++running_;
    auto& p = (*plan_)[i];
    scratch_.clear();
    fmt::format_to(std::back_inserter(scratch_),
                   R"({{"attempt":{},"role":)", t.attempt);
    append_json_string(scratch_, p.role);
    scratch_ += R"(,"agent":)";
    append_json_string(scratch_, p.agent);
    scratch_ += R"(,"runtime":)";
    append_json_string(scratch_, opts_.runtime);
    scratch_ += '}';
    emit("task.started", i, {}, scratch_, now, span_level::attempt);
    out.push_back(i);
  }
}

void run_engine::finish_task(uint32_t index, task_status st,
                             std::string_view message, std::string_view data,
                             clock::time_point now, uint64_t duration_ms) {
  auto& t = tasks_[index];
  bool was_running = t.status == task_status::running;
  if (was_running)
    --running_;
  --counts_[static_cast<int>(t.status)];
  ++counts_[static_cast<int>(st)];
  --open_;
  t.status = st;
  t.finished_ms = unix_ms(now);
  if (!message.empty())
    errors_[index] = std::string{message};
  else
    errors_.erase(index);
  scratch_.clear();
  scratch_ += "task.";
  scratch_ += to_string(st);
  auto type = scratch_;
  // The end of an attempt belongs to the attempt's span; a task skipped or
  // cancelled while queued only to the task's.
  emit(type, index, message, data, now,
       was_running ? span_level::attempt : span_level::task);
  releases_.emplace_back(seq_, index);
  if (opts_.notes) {
    event_note n;
    n.kind = note_kind::task_terminal;
    n.status = static_cast<uint8_t>(st);
    n.task = index;
    n.attempt = t.attempt;
    n.value = duration_ms;
    notes_.push_back(n);
  }
}

bool run_engine::on_result(const attempt_result& res) {
  if (res.index >= tasks_.size())
    return false;
  auto& t = tasks_[res.index];
  // Stale: another attempt, a finished task, or one between attempts (its
  // worker's late "down" after the result that scheduled the retry).
  if (t.status != task_status::running || t.attempt != res.attempt || t.waiting
      || t.retry_ready)
    return false;
  auto now = now_ms();
  workers_.erase(res.index);
  t.exit_code = res.exit_code;
  // A cancelled attempt's exit code is not the task's: replay ignores it.
  t.has_exit_code = res.exit_code >= 0 && !t.cancel_requested;
  std::string data;
  fmt::format_to(std::back_inserter(data), R"({{"attempt":{})", res.attempt);
  if (t.has_exit_code)
    fmt::format_to(std::back_inserter(data), R"(,"exitCode":{})", res.exit_code);
  if (res.signal != 0)
    fmt::format_to(std::back_inserter(data), R"(,"signal":{})", res.signal);
  fmt::format_to(std::back_inserter(data), R"(,"durationMs":{}}})",
                 res.duration_us / 1000);
  if (res.details.size() > 2 && res.details.front() == '{') {
    // the worker's report joins the event: {"attempt":1,…,"model":…}
    data.pop_back();
    data += ',';
    data.append(res.details, 1);
    details_[res.index] = res.details;
  }
  auto ms = res.duration_us / 1000;
  if (t.manual_deadletter) {
    t.manual_deadletter = false;
    t.cancel_requested = false;
    if (first_failed_.empty())
      first_failed_ = (*plan_)[res.index].id;
    finish_task(res.index, task_status::failed, manual_deadletter_text, data, now,
                ms);
    deadletter(res.index, "manual", manual_deadletter_text, now);
  } else if (t.cancel_requested) {
    finish_task(res.index, expired_ ? task_status::failed : task_status::cancelled,
                stop_reason_, data, now, ms);
  } else if (res.ok) {
    finish_task(res.index, task_status::completed, {}, data, now, ms);
  } else {
    auto error = res.error.empty() ? std::string{"worker failed"} : res.error;
    if (t.heartbeat_killed)
      error = "heartbeat dead (killed by the heartbeat watcher): " + error;
    auto& policy = opts_.retry;
    if (policy.enabled && res.attempt < max_attempts_of(res.index)
        && is_retryable(policy, error)) {
      // The task stays running on disk; the attempt ends, its slot frees.
      auto delay = retry_delay_ms(policy, run_id_, (*plan_)[res.index].id,
                                  res.attempt);
      history_[res.index].push_back({t.started_ms, unix_ms(now), error});
      errors_[res.index] = error;
      t.has_exit_code = false; // the exit code of a task, not of an attempt
      t.waiting = true;
      t.retry_due_ms = unix_ms(now) + static_cast<int64_t>(delay);
      --running_;
      ++waiting_;
      data.pop_back(); // '}'
      fmt::format_to(std::back_inserter(data), R"(,"delayMs":{}}})", delay);
      emit("crew.task.retry_attempt", res.index, error, data, now,
           span_level::attempt);
      if (opts_.notes) {
        event_note n;
        n.kind = note_kind::task_retry;
        n.task = res.index;
        n.attempt = res.attempt;
        n.value = delay;
        notes_.push_back(n);
      }
      retries_.emplace_back(res.index, delay);
      return true;
    }
    if (first_failed_.empty())
      first_failed_ = (*plan_)[res.index].id;
    finish_task(res.index, task_status::failed, error, data, now, ms);
    if (policy.enabled)
      deadletter(res.index, "max-retries", error, now);
  }
  return true;
}

void run_engine::skip_dependents(uint32_t failed_index) {
  auto now = now_ms();
  auto& failed_id = (*plan_)[failed_index].id;
  auto message = fmt::format("Blocked by failed task '{}'.", failed_id);
  std::string data = R"({"blockedBy":)";
  append_json_string(data, failed_id);
  data += '}';
  std::vector<uint32_t> stack{failed_index};
  while (!stack.empty()) {
    auto i = stack.back();
    stack.pop_back();
    for (auto d : dependents_of(i)) {
      if (tasks_[d].status != task_status::queued)
        continue;
      finish_task(d, task_status::skipped, message, data, now);
      stack.push_back(d);
    }
  }
}

void run_engine::on_durable(uint64_t seq) {
  if (seq <= durable_)
    return;
  durable_ = seq;
  int64_t ns = 0;
  while (!releases_.empty() && releases_.front().first <= seq) {
    auto i = releases_.front().second;
    releases_.pop_front();
    auto& t = tasks_[i];
    if (ns == 0)
      ns = steady_ns();
    switch (t.status) {
      case task_status::completed:
        if (i == opts_.adaptive_assess && !adaptive_done_)
          adaptive_pending_ = true;
        if (opts_.record_latency && t.ready_ns != 0)
          latencies_.push_back(static_cast<double>(ns - t.ready_ns) / 1e3);
        for (auto d : dependents_of(i)) {
          auto& dt = tasks_[d];
          if (dt.remaining_deps > 0 && --dt.remaining_deps == 0
              && dt.status == task_status::queued && !cancelling_)
            make_ready(d, ns);
        }
        break;
      case task_status::failed:
        skip_dependents(i);
        break;
      default:
        break;
    }
  }
  maybe_finish();
}

bool run_engine::awaiting_injection() const noexcept {
  // The planner completed: its tasks may follow once that is durable and
  // the owner read its output.
  return adaptive_pending_
         || (opts_.adaptive_assess < tasks_.size() && !adaptive_done_
             && tasks_[opts_.adaptive_assess].status == task_status::completed);
}

void run_engine::maybe_finish() {
  if (done() || awaiting_injection())
    return;
  if (open_ > 0) {
    // Blocked: queued tasks remain, but nothing runs, nothing is ready and
    // no terminal event waits to release dependents.
    if (running_ == 0 && waiting_ == 0 && ready_.empty() && releases_.empty()
        && !cancelling_) {
      auto now = now_ms();
      blocked_ = true;
      for (uint32_t i = 0; i < tasks_.size(); ++i)
        if (tasks_[i].status == task_status::queued)
          finish_task(i, task_status::skipped,
                      "No ready queued task; dependency graph may be invalid.",
                      {}, now);
      releases_.clear();
    } else {
      return;
    }
  }
  if (cancelling_ && expired_) {
    emit_run_status(run_status::failed, stop_reason_);
  } else if (cancelling_) {
    emit_run_status(run_status::cancelled, stop_reason_);
  } else if (counts_[static_cast<int>(task_status::failed)] > 0) {
    emit_run_status(run_status::failed,
                    fmt::format("Failed at task '{}'.", first_failed_));
  } else if (blocked_) {
    emit_run_status(run_status::blocked, blocked_summary_.empty()
                                           ? std::string_view{"No ready queued task."}
                                           : std::string_view{blocked_summary_});
  } else if (counts_[static_cast<int>(task_status::completed)] == tasks_.size()) {
    emit_run_status(run_status::completed, "Team workflow completed.");
  } else if (auto n = counts_[static_cast<int>(task_status::cancelled)]; n > 0) {
    // Only a log written before stops were recorded gets here (cancelled,
    // then crashed): never `completed` while a task did not complete.
    emit_run_status(run_status::cancelled,
                    fmt::format("Not every task completed: {} cancelled.", n));
  } else {
    emit_run_status(
      run_status::failed,
      fmt::format("Not every task completed: {} skipped.",
                  counts_[static_cast<int>(task_status::skipped)]));
  }
  final_seq_ = seq_;
}

std::vector<uint32_t> run_engine::cancel(std::string reason) {
  return stop(stop_kind::cancel, std::move(reason));
}

std::vector<uint32_t> run_engine::expire(std::string reason) {
  return stop(stop_kind::expire, std::move(reason));
}

std::vector<uint32_t> run_engine::stop(stop_kind kind, std::string reason) {
  std::vector<uint32_t> running;
  if (done() || cancelling_)
    return running;
  // Every task ended: the run only waits for the last terminal event to be
  // durable, and ends as its tasks say (all completed: completed). Nothing
  // is left to stop, unless a planner's tasks are still to be injected.
  if (open_ == 0 && !awaiting_injection())
    return running;
  cancelling_ = true;
  expired_ = kind == stop_kind::expire;
  stop_reason_ = std::move(reason);
  // The intent first: the run actor kills no worker before it is durable,
  // so a crash in the middle of the stop leaves a log that says so.
  emit(stop_event_type(kind), no_task, stop_reason_, {}, now_ms());
  stop_seq_ = seq_;
  ready_.clear();
  adaptive_pending_ = false; // no tasks join a cancelled run
  adaptive_done_ = true;
  end_open_tasks(running, false);
  // Queued tasks need no release: nothing depends on a cancelled task any
  // more. Only running attempts keep the run open.
  releases_.clear();
  maybe_finish();
  return running;
}

void run_engine::end_open_tasks(std::vector<uint32_t>& to_kill,
                                bool interrupted) {
  auto now = now_ms();
  auto ended = expired_ ? task_status::failed : task_status::cancelled;
  for (uint32_t i = 0; i < tasks_.size(); ++i) {
    auto& t = tasks_[i];
    if (t.status == task_status::queued) {
      finish_task(i, expired_ ? task_status::skipped : task_status::cancelled,
                  stop_reason_, {}, now);
    } else if (t.status == task_status::running
               && (interrupted || t.waiting || t.retry_ready)) {
      // Between attempts, or cut off by a crash (recovery killed its
      // orphaned worker): no process to stop, the task ends now.
      if (t.waiting)
        --waiting_;
      t.waiting = t.retry_ready = false;
      t.retry_due_ms = 0;
      ++running_; // finish_task releases the slot of a running task
      finish_task(i, ended, stop_reason_, {}, now);
    } else if (t.status == task_status::running) {
      t.cancel_requested = true;
      to_kill.push_back(i);
    }
  }
}

std::string_view run_engine::error_of(uint32_t index) const {
  auto i = errors_.find(index);
  return i == errors_.end() ? std::string_view{} : std::string_view{i->second};
}

task_state run_engine::to_task_state(uint32_t index) const {
  task_state out;
  auto& t = tasks_[index];
  out.status = t.status;
  if (t.started_ms != 0)
    out.started_at = iso_time(from_unix_ms(t.started_ms));
  if (t.finished_ms != 0)
    out.finished_at = iso_time(from_unix_ms(t.finished_ms));
  out.error = std::string{error_of(index)};
  out.exit_code = t.exit_code;
  out.has_exit_code = t.has_exit_code;
  if (auto h = history_.find(index); h != history_.end())
    for (auto& c : h->second) {
      attempt_record a;
      if (c.started_ms != 0)
        a.started_at = iso_time(from_unix_ms(c.started_ms));
      if (c.ended_ms != 0)
        a.ended_at = iso_time(from_unix_ms(c.ended_ms));
      a.error = c.error;
      out.attempts.push_back(std::move(a));
    }
  if (t.attempt > out.attempts.size() && t.started_ms != 0 && !t.waiting) {
    attempt_record cur;
    cur.started_at = out.started_at;
    if (is_terminal(t.status)) {
      cur.ended_at = out.finished_at;
      cur.error = out.error;
    }
    out.attempts.push_back(std::move(cur));
  }
  if (t.waiting)
    out.retry_due_ms = t.retry_due_ms;
  if (auto d = details_.find(index); d != details_.end())
    out.details = d->second;
  return out;
}

run_progress run_engine::progress() const {
  run_progress p;
  p.run_id = run_id_;
  p.status = to_string(status_);
  p.total = static_cast<uint32_t>(tasks_.size());
  p.queued = counts_[static_cast<int>(task_status::queued)];
  p.running = counts_[static_cast<int>(task_status::running)];
  p.completed = counts_[static_cast<int>(task_status::completed)];
  p.failed = counts_[static_cast<int>(task_status::failed)];
  p.skipped = counts_[static_cast<int>(task_status::skipped)];
  p.cancelled = counts_[static_cast<int>(task_status::cancelled)];
  p.events = seq_;
  p.durable_seq = durable_;
  p.finished = finished();
  return p;
}

} // namespace crew
