#include "runtime/supervision/event_metrics.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

#include "observability/prometheus.hpp"
#include "runtime/scheduling/planning.hpp"
#include "runtime/scheduling/run_engine.hpp"
#include "store/replay.hpp"
#include "tests/support/shell.hpp"
#include "tests/support/temp_dir.hpp"

using crew::test::shell;

using namespace crew;

namespace {

const metric_family* find(const std::vector<metric_family>& fs,
                          std::string_view name) {
  for (auto& f : fs)
    if (f.name == name)
      return &f;
  return nullptr;
}

/// The value (or count, for histograms) of the sample of `name` whose labels
/// contain all of `want`; -1 if there is none.
double value_of(const std::vector<metric_family>& fs, std::string_view name,
                const label_set& want) {
  auto f = find(fs, name);
  if (f == nullptr)
    return -1;
  for (auto& s : f->samples) {
    bool all = true;
    for (auto& kv : want)
      all = all
            && std::find(s.labels.begin(), s.labels.end(), kv) != s.labels.end();
    if (all)
      return f->type == metric_type::histogram ? static_cast<double>(s.count)
                                               : s.value;
  }
  return -1;
}

std::shared_ptr<const std::vector<planned_task>> two_tasks() {
  auto plan = std::make_shared<std::vector<planned_task>>(
    synthetic_plan(graph_shape::chain, 2, 1));
  (*plan)[0].role = "explorer";
  (*plan)[1].role = "writer";
  return plan;
}

event_note note(note_kind kind, uint8_t status, uint32_t task = UINT32_MAX,
                uint32_t attempt = 0, uint64_t value = 0) {
  event_note n;
  n.kind = kind;
  n.status = status;
  n.task = task;
  n.attempt = attempt;
  n.value = value;
  return n;
}

} // namespace

TEST_CASE("event_metrics: the whole catalogue is registered before any event") {
  metric_registry reg;
  event_metrics m{reg};
  auto fs = reg.collect();
  for (auto name :
       {"crew.run.count", "crew.run.duration_ms", "crew.task.count",
        "crew.task.duration_ms", "crew.task.tokens_total", "crew.task.retry_count",
        "crew.task.retry_attempt_total", "crew.task.retry_delay_ms",
        "crew.task.deadletter_total", "crew.mailbox.count",
        "crew.heartbeat.staleness_ms", "crew.heartbeat.level_total",
        "crew.heartbeat.dead_total", "crew.journal.append_to_durable_ms",
        "crew.journal.fsync_batch_size", "crew.scheduler.queued",
        "crew.scheduler.running", "crew.scheduler.dispatch_latency_ms"})
    CHECK_MESSAGE(find(fs, name) != nullptr, name);
}

TEST_CASE("event_metrics: run and task events populate counts and durations") {
  metric_registry reg;
  event_metrics m{reg};
  m.track("r1", "default", two_tasks());
  m.apply("r1", {note(note_kind::run_status, uint8_t(run_status::running), UINT32_MAX, 0, 1000),
                 note(note_kind::task_terminal, uint8_t(task_status::completed), 0, 1, 40),
                 note(note_kind::task_terminal, uint8_t(task_status::failed), 1, 3, 70),
                 note(note_kind::run_status, uint8_t(run_status::failed), UINT32_MAX, 0, 4000)});
  auto fs = reg.collect();
  CHECK(value_of(fs, "crew.run.count", {{"status", "failed"}}) == 1);
  CHECK(value_of(fs, "crew.run.duration_ms", {{"team", "default"}}) == 1);
  auto dur = find(fs, "crew.run.duration_ms");
  REQUIRE(dur);
  CHECK(dur->samples[0].sum == doctest::Approx(3000));
  CHECK(value_of(fs, "crew.task.count", {{"status", "completed"}}) == 1);
  CHECK(value_of(fs, "crew.task.count", {{"status", "failed"}}) == 1);
  CHECK(value_of(fs, "crew.task.duration_ms", {{"role", "explorer"}}) == 1);
  CHECK(value_of(fs, "crew.task.duration_ms", {{"role", "writer"}}) == 1);
  // attempts - 1: 0 for the first task, 2 for the second
  auto retries = find(fs, "crew.task.retry_count");
  REQUIRE(retries);
  REQUIRE(retries->samples.size() == 1);
  CHECK(retries->samples[0].count == 2);
  CHECK(retries->samples[0].sum == 2);
}

TEST_CASE("event_metrics: retry, deadletter, heartbeat and mailbox events (synthetic)") {
  metric_registry reg;
  event_metrics m{reg};
  m.track("r1", "default", two_tasks());
  m.apply("r1", {note(note_kind::task_retry, 0, 1, 1, 1200),
                 note(note_kind::task_retry, 0, 1, 2, 2400),
                 note(note_kind::task_deadletter, 1, 1),
                 note(note_kind::task_deadletter, 2, 0),
                 note(note_kind::task_heartbeat, 1, 0, 0, 31000),
                 note(note_kind::task_heartbeat, 3, 0, 0, 301000),
                 note(note_kind::heartbeat_dead, 3, 0, 0, 301000),
                 note(note_kind::mailbox, 1),
                 note(note_kind::run_resumed, 0)});
  auto fs = reg.collect();
  CHECK(value_of(fs, "crew.task.count", {{"status", "retry"}}) == 2);
  CHECK(value_of(fs, "crew.task.retry_attempt_total",
                 {{"runId", "r1"}, {"taskId", "t2"}}) == 2);
  CHECK(value_of(fs, "crew.task.retry_delay_ms", {{"taskId", "t2"}}) == 2);
  // once per deadletter, whatever the path (pi-crew counted heartbeat twice)
  CHECK(value_of(fs, "crew.task.deadletter_total", {{"reason", "max-retries"}}) == 1);
  CHECK(value_of(fs, "crew.task.deadletter_total", {{"reason", "heartbeat-dead"}}) == 1);
  CHECK(value_of(fs, "crew.heartbeat.staleness_ms", {{"taskId", "t1"}}) == 301000);
  CHECK(value_of(fs, "crew.heartbeat.level_total", {{"level", "warn"}}) == 1);
  CHECK(value_of(fs, "crew.heartbeat.level_total", {{"level", "dead"}}) == 1);
  CHECK(value_of(fs, "crew.heartbeat.dead_total", {{"runId", "r1"}}) == 1);
  CHECK(value_of(fs, "crew.mailbox.count", {{"direction", "outbox"}}) == 1);
  CHECK(value_of(fs, "crew.run.count", {{"status", "resumed"}}) == 1);
}

TEST_CASE("event_metrics: journal and scheduler statistics") {
  metric_registry reg;
  event_metrics m{reg};
  m.track("r1", "default", two_tasks());
  commit_stats c;
  c.events = 12;
  c.append_to_durable_ms.counts.assign(default_buckets().size() + 1, 0);
  c.append_to_durable_ms.counts[0] = 3;
  c.append_to_durable_ms.sum = 1.5;
  m.apply(c);
  scheduler_stats s;
  s.run_id = "r1";
  s.queued = 7;
  s.running = 2;
  s.dispatch_latency_ms.counts.assign(default_buckets().size() + 1, 0);
  s.dispatch_latency_ms.counts[1] = 4;
  m.apply(s);
  auto fs = reg.collect();
  CHECK(value_of(fs, "crew.journal.fsync_batch_size", {}) == 1);
  CHECK(value_of(fs, "crew.journal.append_to_durable_ms", {}) == 3);
  CHECK(value_of(fs, "crew.scheduler.queued", {{"runId", "r1"}}) == 7);
  CHECK(value_of(fs, "crew.scheduler.running", {{"runId", "r1"}}) == 2);
  CHECK(value_of(fs, "crew.scheduler.dispatch_latency_ms", {}) == 4);
  m.untrack("r1");
  fs = reg.collect();
  CHECK(value_of(fs, "crew.scheduler.queued", {{"runId", "r1"}}) == 0);
}

TEST_CASE("event_metrics: a persisted log gives the same metrics as live digests") {
  test::temp_dir dir;
  auto plan = std::make_shared<std::vector<planned_task>>(
    synthetic_plan(graph_shape::fanout, 5, 1));
  engine_options opts;
  opts.max_concurrent = 2;
  run_engine eng{"r1", *plan, 0, opts};
  eng.start("go", false);
  std::string log;
  std::vector<event_note> live;
  std::vector<uint32_t> ready;
  while (!eng.finished()) {
    ready.clear();
    eng.next_dispatch(ready);
    for (auto i : ready) {
      attempt_result res;
      res.index = i;
      res.attempt = eng.tasks()[i].attempt;
      res.ok = i != 3;
      res.exit_code = i != 3 ? 0 : 2;
      res.duration_us = 5000;
      eng.on_result(res);
    }
    log += eng.take_events();
    auto ns = eng.take_notes();
    live.insert(live.end(), ns.begin(), ns.end());
    eng.on_durable(eng.last_seq());
  }
  auto path = dir.path / "events.jsonl";
  std::ofstream{path} << log;
  metric_registry a, b;
  event_metrics ma{a}, mb{b};
  ma.track("r1", "t", plan);
  ma.apply("r1", live);
  mb.apply_log("r1", "t", plan, path.string());
  auto fa = a.collect();
  auto fb = b.collect();
  for (auto name : {"crew.run.count", "crew.task.count", "crew.task.duration_ms",
                    "crew.task.retry_count"}) {
    auto x = find(fa, name);
    auto y = find(fb, name);
    REQUIRE(x);
    REQUIRE(y);
    REQUIRE_EQ(x->samples.size(), y->samples.size());
    for (size_t i = 0; i < x->samples.size(); ++i) {
      CHECK_MESSAGE(x->samples[i].value == y->samples[i].value, name);
      CHECK_MESSAGE(x->samples[i].count == y->samples[i].count, name);
    }
  }
  CHECK(value_of(fb, "crew.task.count", {{"status", "failed"}}) == 1);
  CHECK(value_of(fb, "crew.run.count", {{"status", "failed"}}) == 1);
}

TEST_CASE("event_metrics: promtool accepts the Prometheus rendering of the catalogue") {
  auto [found, where] = shell("command -v promtool");
  REQUIRE_MESSAGE(found == 0, "promtool not found: install Debian's `prometheus` "
                              "package; it is a declared test dependency");
  metric_registry reg;
  event_metrics m{reg};
  m.track("r1", "default", two_tasks());
  m.apply("r1", {note(note_kind::run_status, uint8_t(run_status::running), UINT32_MAX, 0, 1000),
                 note(note_kind::task_terminal, uint8_t(task_status::completed), 0, 1, 40),
                 note(note_kind::task_retry, 0, 1, 1, 1200),
                 note(note_kind::task_heartbeat, 2, 0, 0, 61000),
                 note(note_kind::task_deadletter, 1, 1),
                 note(note_kind::run_status, uint8_t(run_status::completed), UINT32_MAX, 0, 4000)});
  auto text = prometheus_text(reg.collect());
  test::temp_dir dir;
  auto file = dir.path / "metrics.prom";
  std::ofstream{file} << text;
  auto [status, output] = shell("promtool check metrics < " + file.string());
  INFO("promtool:\n" << output << "\ninput:\n" << text);
  CHECK(status == 0);
  CHECK(text.find("crew_run_duration_seconds_sum{team=\"default\"} 3") != std::string::npos);
  CHECK(text.find("crew_task_retry_attempt_total{run_id=\"r1\",task_id=\"t2\"} 1")
        != std::string::npos);
  CHECK(text.find("crew_run_count_total{status=\"completed\"} 1") != std::string::npos);
}

TEST_CASE("correlation: events carry run -> task -> attempt span ids") {
  auto plan = synthetic_plan(graph_shape::chain, 2, 1);
  engine_options opts;
  run_engine eng{"team_20261126000000_abcdef01", plan, 0, opts};
  eng.start("go", false);
  std::vector<uint32_t> ready;
  eng.next_dispatch(ready);
  REQUIRE(ready.size() == 1);
  attempt_result res;
  res.index = 0;
  res.attempt = 1;
  res.ok = true;
  res.exit_code = 0;
  eng.on_result(res);
  auto log = eng.take_events();
  auto ids = correlation::for_run("team_20261126000000_abcdef01");
  auto hex = [](uint64_t x) {
    std::string s;
    append_hex16(s, x);
    return s;
  };
  auto trace = ids.trace_hex();
  size_t lines = 0;
  for (size_t pos = 0; pos < log.size();) {
    auto end = log.find('\n', pos);
    auto line = log.substr(pos, end - pos);
    pos = end + 1;
    ++lines;
    INFO(line);
    CHECK(line.find("\"traceId\":\"" + trace + "\"") != std::string::npos);
    if (line.find("\"type\":\"run.") != std::string::npos) {
      CHECK(line.find("\"spanId\":\"" + hex(ids.run_span) + "\"") != std::string::npos);
      CHECK(line.find("parentSpanId") == std::string::npos);
    } else {
      // task.started / task.completed of attempt 1 of task 0
      CHECK(line.find("\"spanId\":\"" + hex(ids.attempt_span(0, 1)) + "\"")
            != std::string::npos);
      CHECK(line.find("\"parentSpanId\":\"" + hex(ids.task_span(0)) + "\"")
            != std::string::npos);
    }
  }
  CHECK(lines == 3);
  CHECK(trace.size() == 32);
  CHECK(ids.task_span(0) != ids.task_span(1));
  CHECK(ids.attempt_span(0, 1) != ids.attempt_span(0, 2));
  // the same run id gives the same ids in any process
  CHECK(correlation::for_run("team_20261126000000_abcdef01").trace_hex() == trace);
}
