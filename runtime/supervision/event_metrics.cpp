#include "runtime/supervision/event_metrics.hpp"

#include <charconv>

#include "store/clock.hpp"
#include "store/replay.hpp"

namespace crew {

namespace {

/// Reads `"key":<unsigned>` from a flat JSON object text.
bool uint_field(std::string_view data, std::string_view key, uint64_t& out) {
  std::string pattern = "\"";
  pattern += key;
  pattern += "\":";
  auto pos = data.find(pattern);
  if (pos == std::string_view::npos)
    return false;
  auto first = data.data() + pos + pattern.size();
  auto [ptr, ec] = std::from_chars(first, data.data() + data.size(), out);
  return ec == std::errc{};
}

/// Reads `"key":"<text without escapes>"` from a flat JSON object text.
std::string_view string_field(std::string_view data, std::string_view key) {
  std::string pattern = "\"";
  pattern += key;
  pattern += "\":\"";
  auto pos = data.find(pattern);
  if (pos == std::string_view::npos)
    return {};
  auto first = pos + pattern.size();
  auto last = data.find('"', first);
  return last == std::string_view::npos ? std::string_view{}
                                        : data.substr(first, last - first);
}

const std::vector<double>& retry_buckets() {
  static const std::vector<double> xs{0, 1, 2, 3, 5, 10};
  return xs;
}

const std::vector<double>& batch_buckets() {
  static const std::vector<double> xs{1, 2, 4, 8, 16, 32, 64, 128, 256, 512,
                                      1024, 4096, 16384, 65536};
  return xs;
}

} // namespace

const char* deadletter_reason_name(uint8_t code) noexcept {
  switch (code) {
    case 1:
      return "max-retries";
    case 2:
      return "heartbeat-dead";
    case 3:
      return "manual";
    case 4:
      return "undeliverable";
  }
  return "unknown";
}

const char* heartbeat_level_name(uint8_t level) noexcept {
  switch (level) {
    case 0:
      return "healthy";
    case 1:
      return "warn";
    case 2:
      return "stale";
  }
  return "dead";
}

event_metrics::event_metrics(metric_registry& reg)
  : run_count_(reg.counter_family("crew.run.count", "Runs by final status.")),
    run_duration_(reg.histogram_family("crew.run.duration_ms",
                                       "Run wall time from start to final status.")),
    task_count_(reg.counter_family("crew.task.count",
                                   "Tasks by terminal status, and retries.")),
    task_duration_(reg.histogram_family("crew.task.duration_ms",
                                        "Duration of a task's last attempt.")),
    task_tokens_(reg.histogram_family("crew.task.tokens_total",
                                      "Model tokens used by a task.")),
    retry_count_(reg.histogram_family("crew.task.retry_count",
                                      "Retries a task needed (attempts - 1).",
                                      retry_buckets())),
    retry_attempts_(reg.counter_family("crew.task.retry_attempt_total",
                                       "Retried attempts per task.")),
    retry_delay_(reg.histogram_family("crew.task.retry_delay_ms",
                                      "Backoff before a retried attempt.")),
    deadletters_(reg.counter_family("crew.task.deadletter_total",
                                    "Tasks routed to the deadletter, by reason.")),
    subagents_(reg.counter_family("crew.subagent.count",
                                  "Subagent runs by status.")),
    mailbox_(reg.counter_family("crew.mailbox.count",
                                "Mailbox messages by direction.")),
    staleness_(reg.gauge_family("crew.heartbeat.staleness_ms",
                                "Time since a running task's last heartbeat.")),
    heartbeat_levels_(reg.counter_family("crew.heartbeat.level_total",
                                         "Heartbeat classifications by level.")),
    heartbeat_dead_(reg.counter_family("crew.heartbeat.dead_total",
                                       "Tasks whose heartbeat went dead.")),
    append_to_durable_(reg.histogram_family(
      "crew.journal.append_to_durable_ms",
      "Time from an append reaching the journal to its events being durable.")),
    fsync_batch_(reg.histogram_family("crew.journal.fsync_batch_size",
                                      "Events made durable by one group commit.",
                                      batch_buckets())),
    queued_(reg.gauge_family("crew.scheduler.queued", "Queued tasks of a run.")),
    running_(reg.gauge_family("crew.scheduler.running", "Running tasks of a run.")),
    dispatch_latency_(reg.histogram_family(
      "crew.scheduler.dispatch_latency_ms",
      "Time from a task becoming ready to its dispatch.")) {
  task_retries_ = &task_count_.add({{"status", "retry"}});
  for (int st = 1; st <= 6; ++st)
    if (is_terminal(static_cast<task_status>(st)))
      task_by_status_[st] = &task_count_.add(
        {{"status", to_string(static_cast<task_status>(st))}});
}

void event_metrics::track(std::string run_id, std::string team,
                          std::shared_ptr<const std::vector<planned_task>> plan) {
  run_entry run;
  run.team = std::move(team);
  run.plan = std::move(plan);
  run.retry_count = &retry_count_.add({{"runId", run_id}, {"team", run.team}});
  run.queued = &queued_.add({{"runId", run_id}});
  run.running = &running_.add({{"runId", run_id}});
  runs_[std::move(run_id)] = std::move(run);
}

void event_metrics::untrack(const std::string& run_id) {
  auto i = runs_.find(run_id);
  if (i == runs_.end())
    return;
  i->second.queued->set(0);
  i->second.running->set(0);
  runs_.erase(i);
}

std::string_view event_metrics::task_id(const run_entry& run,
                                        uint32_t index) const {
  if (!run.plan || index >= run.plan->size())
    return "unknown";
  return (*run.plan)[index].id;
}

event_metrics::role_entry& event_metrics::role_for(run_entry& run,
                                                   const std::string& role) {
  auto i = run.by_role.find(role);
  if (i != run.by_role.end())
    return i->second;
  auto& duration = task_duration_.add({{"role", role}});
  auto& entry = run.by_role[role];
  entry.duration = &duration;
  return entry;
}

void event_metrics::apply_one(const std::string& run_id, run_entry& run,
                              const event_note& n) {
  switch (n.kind) {
    case note_kind::run_status: {
      auto st = static_cast<run_status>(n.status);
      auto at = static_cast<int64_t>(n.value);
      if (st == run_status::running) {
        run.running_since_ms = at;
      } else if (is_terminal(st)) {
        run_count_.add({{"status", to_string(st)}}).inc();
        if (run.running_since_ms != 0)
          run_duration_.add({{"team", run.team}})
            .observe(static_cast<double>(at - run.running_since_ms));
      }
      break;
    }
    case note_kind::task_terminal: {
      auto st = static_cast<task_status>(n.status);
      if (n.status >= 1 && n.status <= 6 && task_by_status_[n.status])
        task_by_status_[n.status]->inc();
      if (st == task_status::completed || st == task_status::failed) {
        auto& role = run.plan && n.task < run.plan->size()
                       ? (*run.plan)[n.task].role
                       : run.team;
        auto& series = role_for(run, role);
        series.duration->observe(static_cast<double>(n.value));
        if (n.tokens > 0) {
          // Created on the first tokens only: no empty series otherwise.
          if (series.tokens == nullptr)
            series.tokens = &task_tokens_.add({{"role", role}});
          series.tokens->observe(static_cast<double>(n.tokens));
        }
        if (n.attempt > 0)
          run.retry_count->observe(static_cast<double>(n.attempt - 1));
      }
      break;
    }
    case note_kind::task_retry: {
      // Per-task series: the lookups refer to the run's strings and copy
      // them only when they create the series.
      auto task = task_id(run, n.task);
      task_retries_->inc();
      retry_attempts_.add({{"runId", run_id}, {"taskId", task}}).inc();
      retry_delay_.add({{"runId", run_id}, {"taskId", task}})
        .observe(static_cast<double>(n.value));
      break;
    }
    case note_kind::task_deadletter:
      deadletters_.add({{"reason", deadletter_reason_name(n.status)}}).inc();
      break;
    case note_kind::task_heartbeat: {
      auto level = heartbeat_level_name(n.status);
      staleness_.add({{"runId", run_id}, {"taskId", task_id(run, n.task)}})
        .set(static_cast<double>(n.value));
      heartbeat_levels_.add({{"runId", run_id}, {"level", level}}).inc();
      break;
    }
    case note_kind::heartbeat_dead:
      // once per transition into dead, not per dead tick
      heartbeat_dead_.add({{"runId", run_id}}).inc();
      staleness_.add({{"runId", run_id}, {"taskId", task_id(run, n.task)}})
        .set(static_cast<double>(n.value));
      break;
    case note_kind::mailbox:
      mailbox_.add({{"direction", n.status == 0 ? "inbox" : "outbox"}}).inc();
      break;
    case note_kind::run_resumed:
      run_count_.add({{"status", "resumed"}}).inc();
      break;
  }
}

void event_metrics::apply(const std::string& run_id,
                          const std::vector<event_note>& notes) {
  auto i = runs_.find(run_id);
  if (i == runs_.end()) {
    track(run_id, "unknown", nullptr);
    i = runs_.find(run_id);
  }
  for (auto& n : notes)
    apply_one(run_id, i->second, n);
}

void event_metrics::apply(const commit_stats& stats) {
  if (stats.events > 0)
    fsync_batch_.add({}).observe(static_cast<double>(stats.events));
  append_to_durable_.add({}).merge(stats.append_to_durable_ms.counts,
                                   stats.append_to_durable_ms.sum);
}

void event_metrics::apply(const scheduler_stats& stats) {
  auto i = runs_.find(stats.run_id);
  if (i != runs_.end()) {
    i->second.queued->set(stats.queued);
    i->second.running->set(stats.running);
  }
  dispatch_latency_.add({}).merge(stats.dispatch_latency_ms.counts,
                                  stats.dispatch_latency_ms.sum);
}

bool event_metrics::note_of(
  const event_view& ev, const std::function<uint32_t(std::string_view)>& index_of,
  event_note& out) {
  out = event_note{};
  auto type = ev.type;
  if (type.starts_with("run.")) {
    run_status st;
    if (!from_string(type.substr(4), st))
      return false;
    std::chrono::system_clock::time_point tp;
    if (!parse_iso_time(ev.time, tp))
      return false;
    out.kind = note_kind::run_status;
    out.status = static_cast<uint8_t>(st);
    out.value = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch())
        .count());
    return true;
  }
  if (!ev.task_id.empty())
    out.task = index_of(ev.task_id);
  uint64_t x = 0;
  if (type.starts_with("task.")) {
    task_status st;
    if (!from_string(type.substr(5), st) || !is_terminal(st))
      return false;
    out.kind = note_kind::task_terminal;
    out.status = static_cast<uint8_t>(st);
    if (uint_field(ev.data_raw, "attempt", x))
      out.attempt = static_cast<uint32_t>(x);
    if (uint_field(ev.data_raw, "durationMs", x))
      out.value = x;
    if (uint_field(ev.data_raw, "tokens", x))
      out.tokens = x;
    return true;
  }
  if (type == "crew.task.retry_attempt") {
    out.kind = note_kind::task_retry;
    if (uint_field(ev.data_raw, "attempt", x))
      out.attempt = static_cast<uint32_t>(x);
    if (uint_field(ev.data_raw, "delayMs", x))
      out.value = x;
    return true;
  }
  if (type == "crew.task.deadletter") {
    out.kind = note_kind::task_deadletter;
    auto reason = string_field(ev.data_raw, "reason");
    for (uint8_t code = 1; code <= 4; ++code)
      if (reason == deadletter_reason_name(code))
        out.status = code;
    return true;
  }
  if (type == "crew.task.heartbeat_dead") {
    out.kind = note_kind::heartbeat_dead;
    out.status = 3;
    if (uint_field(ev.data_raw, "elapsedMs", x))
      out.value = x;
    return true;
  }
  if (type == "mailbox.message") {
    out.kind = note_kind::mailbox;
    out.status = string_field(ev.data_raw, "direction") == "outbox" ? 1 : 0;
    return true;
  }
  if (type == "crew.run.resumed") {
    out.kind = note_kind::run_resumed;
    return true;
  }
  return false;
}

void event_metrics::apply_log(const std::string& run_id, const std::string& team,
                              std::shared_ptr<const std::vector<planned_task>> plan,
                              const std::string& events_path) {
  std::unordered_map<std::string_view, uint32_t> index;
  for (uint32_t i = 0; plan && i < plan->size(); ++i)
    index.emplace((*plan)[i].id, i);
  track(run_id, team, plan);
  std::vector<event_note> notes;
  for_each_event(events_path, [&](const event_view& ev) {
    event_note n;
    auto lookup = [&](std::string_view id) {
      auto i = index.find(id);
      return i == index.end() ? UINT32_MAX : i->second;
    };
    if (note_of(ev, lookup, n))
      notes.push_back(n);
  });
  apply(run_id, notes);
  untrack(run_id);
}

} // namespace crew
