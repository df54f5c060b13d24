#include "runtime/scheduling/run_engine.hpp"

#include <doctest/doctest.h>

#include <fstream>

#include "runtime/scheduling/planning.hpp"
#include "store/replay.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;

namespace {

/// Drives a run engine by hand and keeps its log in a temp file.
struct rig {
  test::temp_dir dir;
  std::vector<planned_task> plan;
  run_engine eng;
  std::string log;

  rig(uint32_t n, retry_policy p, engine_options o = {})
    : plan(synthetic_plan(graph_shape::chain, n, 1)),
      eng("r1", plan, 0, [&] {
        o.retry = p;
        return o;
      }()) {
    eng.start("go", false);
  }

  std::vector<uint32_t> dispatch() {
    std::vector<uint32_t> out;
    eng.next_dispatch(out);
    return out;
  }

  void result(uint32_t i, bool ok, std::string error = "boom") {
    attempt_result r;
    r.index = i;
    r.attempt = eng.tasks()[i].attempt;
    r.ok = ok;
    r.exit_code = ok ? 0 : 1;
    r.error = ok ? "" : error;
    REQUIRE(eng.on_result(r));
  }

  /// Makes everything durable, as often as new events appear.
  void sync() {
    do {
      log += eng.take_events();
      eng.on_durable(eng.last_seq());
    } while (eng.has_events());
  }

  replay_state replay() {
    auto path = dir.path / "events.jsonl";
    std::ofstream{path} << log;
    return replay_log(path, plan);
  }

  size_t count(std::string_view type) const {
    size_t n = 0;
    for (size_t pos = 0; (pos = log.find(type, pos)) != std::string::npos; ++pos)
      ++n;
    return n;
  }
};

retry_policy policy(uint32_t attempts) {
  retry_policy p;
  p.enabled = true;
  p.max_attempts = attempts;
  p.backoff_ms = 100;
  p.jitter_ratio = 0;
  return p;
}

} // namespace

TEST_CASE("engine retry: a failed attempt waits, stays running on disk, then succeeds") {
  rig r{1, policy(3)};
  CHECK(r.dispatch().size() == 1);
  r.result(0, false, "exit code 1");
  auto retries = r.eng.take_retries();
  REQUIRE(retries.size() == 1);
  CHECK(retries[0].second == 100);
  CHECK(r.dispatch().empty()); // not before the timer
  r.sync();
  auto mid = r.replay();
  CHECK(mid.tasks[0].status == task_status::running); // never back from terminal
  CHECK(mid.tasks[0].attempts.size() == 1);
  CHECK(mid.tasks[0].attempts[0].error == "exit code 1");
  CHECK(mid.tasks[0].retry_due_ms != 0);
  r.eng.retry_due(0);
  CHECK(r.dispatch().size() == 1);
  CHECK(r.eng.tasks()[0].attempt == 2);
  r.result(0, true);
  r.sync();
  REQUIRE(r.eng.finished());
  CHECK(r.eng.status() == run_status::completed);
  auto end = r.replay();
  CHECK(end.violations.empty());
  CHECK(end.tasks[0].status == task_status::completed);
  REQUIRE(end.tasks[0].attempts.size() == 2);
  CHECK(end.tasks[0].error.empty());
  CHECK(r.count("\"type\":\"crew.task.retry_attempt\"") == 1);
  CHECK(r.count("\"type\":\"task.completed\"") == 1);
  CHECK(r.count("\"delayMs\":100") == 1);
  // the engine's snapshot agrees with the replay
  auto mem = r.eng.to_task_state(0);
  CHECK(mem.attempts.size() == 2);
  CHECK(mem.attempts[0].error == end.tasks[0].attempts[0].error);
  CHECK(mem.attempts[1].started_at == end.tasks[0].attempts[1].started_at);
  CHECK(r.eng.take_durable_deadletters().empty());
}

TEST_CASE("engine retry: the last attempt fails the task and deadletters it once durable") {
  rig r{2, policy(2)};
  r.dispatch();
  r.result(0, false);
  r.eng.take_retries();
  r.eng.retry_due(0);
  r.dispatch();
  r.result(0, false, "still broken");
  CHECK(r.eng.take_durable_deadletters().empty()); // not durable yet
  r.sync();
  auto lines = r.eng.take_durable_deadletters();
  CHECK(lines.find("\"taskId\":\"t1\"") != std::string::npos);
  CHECK(lines.find("\"reason\":\"max-retries\"") != std::string::npos);
  CHECK(lines.find("\"attempts\":2") != std::string::npos);
  CHECK(lines.find("\"lastError\":\"still broken\"") != std::string::npos);
  CHECK(lines.find("\"traceId\":\"" + correlation::for_run("r1").trace_hex())
        != std::string::npos);
  r.sync();
  CHECK(r.eng.status() == run_status::failed);
  auto rs = r.replay();
  CHECK(rs.violations.empty());
  CHECK(rs.tasks[0].status == task_status::failed);
  CHECK(rs.tasks[1].status == task_status::skipped);
  CHECK(r.count("\"type\":\"crew.task.deadletter\"") == 1);
}

TEST_CASE("engine retry: a non-retryable error gives up at once") {
  auto p = policy(5);
  p.retryable_errors = {"*rate limit*"};
  rig r{1, p};
  r.dispatch();
  r.result(0, false, "permission denied");
  CHECK(r.eng.take_retries().empty());
  r.sync();
  CHECK(r.eng.finished());
  CHECK(r.eng.status() == run_status::failed);
  CHECK(r.count("\"attempts\":1") >= 1);
}

TEST_CASE("engine retry: a task cancelled during its backoff ends cancelled at once") {
  rig r{2, policy(3)};
  r.dispatch();
  r.result(0, false);
  r.eng.take_retries();
  auto kill = r.eng.cancel("stop");
  CHECK(kill.empty()); // no process to kill during a backoff
  r.sync();
  REQUIRE(r.eng.finished());
  CHECK(r.eng.status() == run_status::cancelled);
  r.eng.retry_due(0); // the timer firing late changes nothing
  CHECK(r.dispatch().empty());
  auto rs = r.replay();
  CHECK(rs.violations.empty());
  CHECK(rs.tasks[0].status == task_status::cancelled);
}

TEST_CASE("engine retry: per-agent maxAttempts overrides the policy") {
  engine_options o;
  o.max_attempts = {1};
  rig r{1, policy(5), o};
  r.dispatch();
  r.result(0, false);
  CHECK(r.eng.take_retries().empty());
}

TEST_CASE("engine retry: a resume during a backoff continues the schedule from the log") {
  rig r{1, policy(3)};
  r.dispatch();
  r.result(0, false);
  r.eng.take_retries();
  r.sync();
  auto rs = r.replay(); // the owner stops here, mid-backoff
  REQUIRE(rs.tasks[0].retry_due_ms != 0);
  auto p = policy(3);
  engine_options o;
  o.retry = p;
  run_engine again{"r1", r.plan, rs.last_seq, o};
  again.load_states(rs.tasks);
  again.start("resume", true);
  auto retries = again.take_retries();
  REQUIRE(retries.size() == 1);
  CHECK(retries[0].first == 0);
  CHECK(retries[0].second <= 100); // what is left of the 100 ms
  auto log = again.take_events();
  CHECK(log.find("task.requeued") == std::string::npos); // not interrupted
  again.retry_due(0);
  std::vector<uint32_t> out;
  again.next_dispatch(out);
  REQUIRE(out.size() == 1);
  CHECK(again.tasks()[0].attempt == 2); // the attempt count goes on
}

TEST_CASE("engine retry: a late second result for an attempt in backoff is ignored") {
  rig r{1, policy(3)};
  r.dispatch();
  r.result(0, false);
  attempt_result late;
  late.index = 0;
  late.attempt = 1;
  late.error = "task worker exited without a result";
  CHECK_FALSE(r.eng.on_result(late));
  CHECK(r.eng.take_retries().size() == 1);
}

TEST_CASE("engine checkpoint: equals a replay of the durable log and restores "
          "the same task states") {
  rig r{6, policy(3)};
  auto compare = [&](const char* when) {
    INFO(when);
    r.sync();
    auto rs = r.replay();
    auto from_log = make_checkpoint(rs.tasks);
    auto ck = r.eng.checkpoint();
    CHECK_EQ(ck.seq, rs.last_seq);
    CHECK(ck.status == rs.status);
    REQUIRE_EQ(ck.tasks.size(), from_log.tasks.size());
    for (uint32_t i = 0; i < ck.tasks.size(); ++i) {
      INFO("task ", i);
      auto a = checkpoint_task_state(ck, i);
      auto b = checkpoint_task_state(from_log, i);
      CHECK(a.status == b.status);
      CHECK_EQ(a.started_at, b.started_at);
      CHECK_EQ(a.finished_at, b.finished_at);
      CHECK_EQ(a.error, b.error);
      CHECK_EQ(a.retry_due_ms, b.retry_due_ms);
      REQUIRE_EQ(a.attempts.size(), b.attempts.size());
      for (size_t k = 0; k < a.attempts.size(); ++k) {
        CHECK_EQ(a.attempts[k].started_at, b.attempts[k].started_at);
        CHECK_EQ(a.attempts[k].ended_at, b.attempts[k].ended_at);
        CHECK_EQ(a.attempts[k].error, b.attempts[k].error);
      }
      // a fresh engine loaded from the checkpoint describes the same task
      run_engine again{"r1", r.plan, ck.seq, engine_options{}};
      again.load_checkpoint(ck);
      auto c = again.to_task_state(i);
      CHECK(c.status == a.status);
      CHECK_EQ(c.attempts.size(), a.attempts.size());
      CHECK_EQ(c.error, a.error);
    }
  };
  compare("start");
  r.dispatch();
  r.eng.worker_started(0, 1, 4242, 7);
  compare("running with a worker");
  CHECK_EQ(r.eng.checkpoint().tasks[0].worker_pid, 4242);
  r.result(0, false); // retry waits
  compare("in backoff");
  r.eng.take_retries();
  r.eng.retry_due(0); // timer fired, not dispatched yet: still waiting on disk
  compare("retry due");
  r.dispatch();
  r.result(0, true);
  compare("completed after a retry");
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    r.dispatch();
    r.result(1, false, "exit 2");
    r.eng.take_retries();
    r.eng.retry_due(1);
  }
  compare("failed after three attempts, dependents skipped");
  CHECK(r.eng.checkpoint().tasks[1].status == task_status::failed);
}
