#include "runtime/scheduling/run_engine.hpp"

#include <algorithm>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "runtime/scheduling/planning.hpp"
#include "store/event_log.hpp"
#include "store/replay.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
namespace fs = std::filesystem;

namespace {

constexpr const char* run_id = "team_20250101000000_0badcafe";

using idx_vec = std::vector<uint32_t>;

/// A plan of tasks `names` with `deps[i]` the dependency indices of task i.
std::vector<planned_task> make_plan(const std::vector<std::string>& names,
                                    const std::vector<idx_vec>& deps) {
  std::vector<planned_task> plan(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    auto& t = plan[i];
    t.id = names[i];
    t.step_id = names[i];
    t.role = "worker";
    t.agent = "worker";
    t.title = names[i];
    if (i < deps.size())
      for (auto d : deps[i]) {
        t.deps.push_back(d);
        t.depends_on.push_back(names[d]);
      }
  }
  return plan;
}

std::vector<planned_task> independent(uint32_t n) {
  std::vector<std::string> names;
  for (uint32_t i = 0; i < n; ++i)
    names.push_back("t" + std::to_string(i + 1));
  return make_plan(names, {});
}

attempt_result ok_result(const run_engine& eng, uint32_t i) {
  attempt_result r;
  r.index = i;
  r.attempt = eng.tasks()[i].attempt;
  r.ok = true;
  r.exit_code = 0;
  r.duration_us = 1500;
  return r;
}

attempt_result fail_result(const run_engine& eng, uint32_t i) {
  attempt_result r;
  r.index = i;
  r.attempt = eng.tasks()[i].attempt;
  r.ok = false;
  r.exit_code = 1;
  r.error = "exit code 1";
  r.duration_us = 2500;
  return r;
}

/// An engine (constructed with last_seq 1) plus the log its events go to,
/// which starts with a `run.created` line of seq 1.
struct harness {
  std::vector<planned_task> plan;
  test::temp_dir dir;
  fs::path log;
  run_engine eng;

  explicit harness(std::vector<planned_task> p, engine_options opts = {})
    : plan(std::move(p)),
      log(dir.path / "events.jsonl"),
      eng(run_id, plan, 1, opts) {
    std::string line;
    event_fields ev;
    ev.type = "run.created";
    ev.run_id = run_id;
    ev.message = "Run created.";
    ev.seq = 1;
    ev.time = std::chrono::system_clock::now();
    append_event_line(line, ev);
    test::append_to(log, line);
  }

  /// Writes the engine's buffered events to the log (not yet durable).
  void flush() {
    test::append_to(log, eng.take_events());
  }

  /// Writes and reports everything as durable.
  void sync() {
    flush();
    eng.on_durable(eng.last_seq());
  }

  idx_vec dispatch() {
    idx_vec out;
    eng.next_dispatch(out);
    return out;
  }
};

/// (type, task id) of every event in the log.
std::vector<std::pair<std::string, std::string>> events_of(const fs::path& log) {
  std::vector<std::pair<std::string, std::string>> out;
  for_each_event(log, [&](const event_view& ev) {
    out.emplace_back(std::string{ev.type}, std::string{ev.task_id});
  });
  return out;
}

bool is_terminal_type(const std::string& type) {
  return type == "task.completed" || type == "task.failed"
         || type == "task.skipped" || type == "task.cancelled";
}

/// Every task has exactly one terminal event in the log (since its last
/// requeue), and the final run event is the last line.
void check_one_terminal_each(const harness& h) {
  std::map<std::string, int> terminal;
  auto evs = events_of(h.log);
  for (auto& [type, task] : evs) {
    if (type == "task.requeued")
      terminal[task] = 0;
    else if (is_terminal_type(type))
      ++terminal[task];
  }
  for (auto& t : h.plan)
    CHECK_MESSAGE(terminal[t.id] == 1, t.id);
  REQUIRE_FALSE(evs.empty());
  if (h.eng.done())
    CHECK_EQ(evs.back().first, std::string{"run."} + to_string(h.eng.status()));
}

/// Replaying the log reproduces the engine's run and task states.
void check_replay(const harness& h) {
  auto rs = replay_log(h.log, h.plan);
  CHECK(rs.violations.empty());
  for (auto& v : rs.violations)
    MESSAGE(v);
  CHECK(rs.seq_contiguous);
  CHECK_FALSE(rs.torn_tail);
  CHECK_EQ(rs.last_seq, h.eng.last_seq());
  CHECK_EQ(rs.status, h.eng.status());
  CHECK_EQ(rs.summary, h.eng.summary());
  REQUIRE_EQ(rs.tasks.size(), h.plan.size());
  for (uint32_t i = 0; i < h.plan.size(); ++i) {
    INFO("task ", h.plan[i].id);
    auto mem = h.eng.to_task_state(i);
    auto& disk = rs.tasks[i];
    CHECK_EQ(disk.status, mem.status);
    CHECK_EQ(disk.started_at, mem.started_at);
    CHECK_EQ(disk.finished_at, mem.finished_at);
    CHECK_EQ(disk.error, mem.error);
    CHECK_EQ(disk.has_exit_code, mem.has_exit_code);
    if (disk.has_exit_code && mem.has_exit_code)
      CHECK_EQ(disk.exit_code, mem.exit_code);
  }
}

/// Runs the engine to the end: one result per step (oldest running first),
/// everything made durable after each step. `succeeds(i)` decides outcomes.
void drive(harness& h, const std::function<bool(uint32_t)>& succeeds,
           uint32_t* max_running = nullptr) {
  std::deque<uint32_t> running;
  for (int guard = 0; guard < 1'000'000 && !h.eng.finished(); ++guard) {
    for (auto i : h.dispatch())
      running.push_back(i);
    if (max_running != nullptr)
      *max_running = std::max<uint32_t>(*max_running,
                                        static_cast<uint32_t>(running.size()));
    if (!running.empty()) {
      auto i = running.front();
      running.pop_front();
      REQUIRE(h.eng.on_result(succeeds(i) ? ok_result(h.eng, i)
                                          : fail_result(h.eng, i)));
    }
    h.sync();
  }
  REQUIRE(h.eng.finished());
}

} // namespace

TEST_CASE("run_engine: dependents wait until the dependency's terminal event "
          "is durable") {
  harness h{synthetic_plan(graph_shape::chain, 3, 1)};
  h.eng.start("Executing team workflow.", false);
  CHECK_EQ(h.eng.status(), run_status::running);
  CHECK_EQ(h.dispatch(), idx_vec{0});
  CHECK(h.dispatch().empty()); // t2 depends on t1
  h.sync();
  REQUIRE(h.eng.on_result(ok_result(h.eng, 0)));
  CHECK_EQ(h.eng.tasks()[0].status, task_status::completed);
  auto terminal_seq = h.eng.last_seq();
  CHECK(h.dispatch().empty());
  h.flush(); // written, not yet durable
  CHECK(h.dispatch().empty());
  h.eng.on_durable(terminal_seq - 1);
  CHECK(h.dispatch().empty());
  h.eng.on_durable(terminal_seq);
  CHECK_EQ(h.dispatch(), idx_vec{1});
  CHECK_EQ(h.eng.tasks()[1].status, task_status::running);
  CHECK_EQ(h.eng.tasks()[2].status, task_status::queued);
  h.sync();
  REQUIRE(h.eng.on_result(ok_result(h.eng, 1)));
  h.sync();
  CHECK_EQ(h.dispatch(), idx_vec{2});
  h.sync();
  REQUIRE(h.eng.on_result(ok_result(h.eng, 2)));
  // The last terminal event is written but not durable: no final event yet.
  CHECK_FALSE(h.eng.done());
  h.sync();
  CHECK(h.eng.done());
  CHECK_EQ(h.eng.status(), run_status::completed);
  CHECK_FALSE(h.eng.finished()); // run.completed not yet durable
  h.sync();
  CHECK(h.eng.finished());
  CHECK_EQ(h.eng.summary(), "Team workflow completed.");
  auto p = h.eng.progress();
  CHECK_EQ(p.completed, 3u);
  CHECK_EQ(p.total, 3u);
  CHECK(p.finished);
  check_one_terminal_each(h);
  check_replay(h);
}

TEST_CASE("run_engine: finished() only once the final event is durable") {
  harness h{independent(1)};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), idx_vec{0});
  REQUIRE(h.eng.on_result(ok_result(h.eng, 0)));
  h.flush();
  h.eng.on_durable(h.eng.last_seq()); // releases t1 -> run.completed emitted
  REQUIRE(h.eng.done());
  auto final_seq = h.eng.last_seq();
  CHECK_FALSE(h.eng.finished());
  h.flush();
  h.eng.on_durable(final_seq - 1);
  CHECK_FALSE(h.eng.finished());
  h.eng.on_durable(final_seq);
  CHECK(h.eng.finished());
  CHECK_FALSE(h.eng.has_events());
  check_replay(h);
}

TEST_CASE("run_engine: concurrency ceiling with continuous dispatch") {
  engine_options opts;
  opts.max_concurrent = 3;
  harness h{independent(10), opts};
  h.eng.start("go", false);
  auto first = h.dispatch();
  CHECK_EQ(first.size(), 3u);
  CHECK(h.dispatch().empty());
  CHECK_EQ(h.eng.progress().running, 3u);
  // One slot frees: it is refilled at once, without any durability and
  // without waiting for the two other running tasks.
  REQUIRE(h.eng.on_result(ok_result(h.eng, first[1])));
  auto refill = h.dispatch();
  CHECK_EQ(refill.size(), 1u);
  CHECK_EQ(h.eng.progress().running, 3u);
  CHECK_EQ(h.eng.tasks()[first[0]].status, task_status::running);
  CHECK_EQ(h.eng.tasks()[first[2]].status, task_status::running);
  h.sync();
  // Run the rest, in reverse start order, checking the ceiling throughout.
  std::vector<uint32_t> running{first[0], first[2], refill[0]};
  uint32_t max_seen = 3;
  while (!running.empty()) {
    auto i = running.back();
    running.pop_back();
    REQUIRE(h.eng.on_result(ok_result(h.eng, i)));
    for (auto j : h.dispatch())
      running.push_back(j);
    max_seen = std::max<uint32_t>(max_seen, h.eng.progress().running);
    CHECK_LE(h.eng.progress().running, 3u);
    CHECK_EQ(h.eng.progress().running, running.size());
    h.sync();
  }
  CHECK_EQ(max_seen, 3u);
  h.sync();
  CHECK(h.eng.finished());
  CHECK_EQ(h.eng.status(), run_status::completed);
  check_one_terminal_each(h);
  check_replay(h);
}

TEST_CASE("run_engine: max_concurrent 0 is treated as 1") {
  engine_options opts;
  opts.max_concurrent = 0;
  harness h{independent(3), opts};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch().size(), 1u);
}

TEST_CASE("run_engine: a failure skips exactly the transitive dependents") {
  // a -> b -> c -> d <- e -> f ; g independent
  auto plan = make_plan({"a", "b", "c", "d", "e", "f", "g"},
                        {{}, {0}, {1}, {2, 4}, {}, {4}, {}});
  engine_options opts;
  opts.max_concurrent = 4;
  harness h{plan, opts};
  h.eng.start("go", false);
  drive(h, [](uint32_t i) { return i != 1; }); // b fails
  auto& t = h.eng.tasks();
  CHECK_EQ(t[0].status, task_status::completed);
  CHECK_EQ(t[1].status, task_status::failed);
  CHECK_EQ(t[2].status, task_status::skipped);
  CHECK_EQ(t[3].status, task_status::skipped);
  CHECK_EQ(t[4].status, task_status::completed);
  CHECK_EQ(t[5].status, task_status::completed);
  CHECK_EQ(t[6].status, task_status::completed);
  CHECK_EQ(t[2].attempt, 0u); // never started
  CHECK_EQ(t[3].attempt, 0u);
  CHECK_EQ(h.eng.error_of(1), "exit code 1");
  CHECK_EQ(h.eng.error_of(2), "Blocked by failed task 'b'.");
  CHECK_EQ(h.eng.error_of(3), "Blocked by failed task 'b'.");
  CHECK_EQ(h.eng.status(), run_status::failed);
  CHECK_EQ(h.eng.summary(), "Failed at task 'b'.");
  auto p = h.eng.progress();
  CHECK_EQ(p.completed, 4u);
  CHECK_EQ(p.failed, 1u);
  CHECK_EQ(p.skipped, 2u);
  CHECK_EQ(p.queued + p.running + p.cancelled, 0u);
  check_one_terminal_each(h);
  check_replay(h);
}

TEST_CASE("run_engine: the independent branch keeps running after a failure") {
  // a fails while e (independent) is still running; f (after e) starts later.
  auto plan = make_plan({"a", "b", "e", "f"}, {{}, {0}, {}, {2}});
  engine_options opts;
  opts.max_concurrent = 2;
  harness h{plan, opts};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), (idx_vec{0, 2}));
  h.sync();
  REQUIRE(h.eng.on_result(fail_result(h.eng, 0)));
  h.sync();
  CHECK_EQ(h.eng.tasks()[1].status, task_status::skipped);
  CHECK_FALSE(h.eng.done());
  REQUIRE(h.eng.on_result(ok_result(h.eng, 2)));
  h.sync();
  CHECK_EQ(h.dispatch(), idx_vec{3});
  h.sync();
  REQUIRE(h.eng.on_result(ok_result(h.eng, 3)));
  h.sync();
  h.sync();
  CHECK(h.eng.finished());
  CHECK_EQ(h.eng.tasks()[3].status, task_status::completed);
  CHECK_EQ(h.eng.status(), run_status::failed);
  CHECK_EQ(h.eng.summary(), "Failed at task 'a'.");
  check_one_terminal_each(h);
  check_replay(h);
}

TEST_CASE("run_engine: random graphs keep every invariant") {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    CAPTURE(seed);
    engine_options opts;
    opts.max_concurrent = 7;
    harness h{synthetic_plan(graph_shape::random, 200, seed), opts};
    h.eng.start("go", false);
    std::map<uint32_t, uint64_t> terminal_seq;
    std::deque<uint32_t> running;
    for (int guard = 0; guard < 100000 && !h.eng.finished(); ++guard) {
      for (auto i : h.dispatch()) {
        for (auto d : h.plan[i].deps) {
          CHECK_EQ(h.eng.tasks()[d].status, task_status::completed);
          REQUIRE(terminal_seq.count(d) == 1);
          CHECK_LE(terminal_seq[d], h.eng.durable_seq());
        }
        running.push_back(i);
      }
      CHECK_LE(h.eng.progress().running, 7u);
      if (!running.empty()) {
        // alternate oldest/newest, ~1 in 17 fails
        uint32_t i;
        if (guard % 2 == 0) {
          i = running.front();
          running.pop_front();
        } else {
          i = running.back();
          running.pop_back();
        }
        auto res = (i * 7919 + seed) % 17 == 0 ? fail_result(h.eng, i)
                                                : ok_result(h.eng, i);
        REQUIRE(h.eng.on_result(res));
        terminal_seq[i] = h.eng.last_seq();
      }
      // durability lags: only every third step
      if (guard % 3 == 0 || running.empty())
        h.sync();
      else
        h.flush();
    }
    REQUIRE(h.eng.finished());
    // A task is skipped iff some dependency is failed or skipped.
    auto& t = h.eng.tasks();
    for (uint32_t i = 0; i < h.plan.size(); ++i) {
      bool blocked = false;
      for (auto d : h.plan[i].deps)
        blocked = blocked || t[d].status == task_status::failed
                  || t[d].status == task_status::skipped;
      CHECK_MESSAGE(blocked == (t[i].status == task_status::skipped), i);
    }
    check_one_terminal_each(h);
    check_replay(h);
  }
}

TEST_CASE("run_engine: cancel ends queued tasks at once and running ones on "
          "their result") {
  // t5 depends on t1
  auto plan = make_plan({"t1", "t2", "t3", "t4", "t5"}, {{}, {}, {}, {}, {0}});
  engine_options opts;
  opts.max_concurrent = 2;
  harness h{plan, opts};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), (idx_vec{0, 1}));
  h.sync();
  auto kill = h.eng.cancel("Run cancelled by user request.");
  std::sort(kill.begin(), kill.end());
  CHECK_EQ(kill, (idx_vec{0, 1}));
  for (uint32_t i : {2u, 3u, 4u})
    CHECK_EQ(h.eng.tasks()[i].status, task_status::cancelled);
  CHECK_EQ(h.eng.tasks()[0].status, task_status::running);
  CHECK_EQ(h.eng.tasks()[1].status, task_status::running);
  CHECK_FALSE(h.eng.done());
  CHECK(h.dispatch().empty());
  CHECK(h.eng.cancel("again").empty()); // idempotent
  h.sync();
  CHECK(h.dispatch().empty());
  // A successful result of a cancelled attempt still ends cancelled.
  REQUIRE(h.eng.on_result(ok_result(h.eng, 0)));
  CHECK_EQ(h.eng.tasks()[0].status, task_status::cancelled);
  h.sync();
  CHECK(h.dispatch().empty()); // t5 is not released
  CHECK_FALSE(h.eng.done());
  REQUIRE(h.eng.on_result(fail_result(h.eng, 1)));
  CHECK_EQ(h.eng.tasks()[1].status, task_status::cancelled);
  CHECK(h.dispatch().empty());
  // the final event follows once the last task event is durable
  CHECK_FALSE(h.eng.done());
  h.sync();
  CHECK(h.eng.done());
  CHECK_EQ(h.eng.status(), run_status::cancelled);
  CHECK_EQ(h.eng.summary(), "Run cancelled by user request.");
  CHECK_FALSE(h.eng.finished());
  h.sync();
  CHECK(h.eng.finished());
  CHECK(h.dispatch().empty());
  auto p = h.eng.progress();
  CHECK_EQ(p.cancelled, 5u);
  CHECK_EQ(p.failed, 0u);
  CHECK(h.eng.cancel("late").empty());
  check_one_terminal_each(h);
  check_replay(h);
}

TEST_CASE("run_engine: cancel with nothing running ends the run at once") {
  harness h{synthetic_plan(graph_shape::fanout, 4, 1)};
  h.eng.start("go", false);
  auto kill = h.eng.cancel("stop");
  CHECK(kill.empty());
  CHECK(h.eng.done());
  CHECK_EQ(h.eng.status(), run_status::cancelled);
  for (auto& t : h.eng.tasks())
    CHECK_EQ(t.status, task_status::cancelled);
  h.sync();
  CHECK(h.eng.finished());
  check_one_terminal_each(h);
  check_replay(h);
}

TEST_CASE("run_engine: expire fails running tasks, skips queued ones and "
          "fails the run") {
  engine_options opts;
  opts.max_concurrent = 1;
  harness h{independent(3), opts};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), idx_vec{0});
  h.sync();
  auto kill = h.eng.expire("Run exceeded limits.maxRunMinutes (1 min).");
  CHECK_EQ(kill, idx_vec{0});
  CHECK_EQ(h.eng.tasks()[1].status, task_status::skipped);
  CHECK_EQ(h.eng.tasks()[2].status, task_status::skipped);
  CHECK(h.dispatch().empty());
  CHECK(h.eng.expire("again").empty());
  CHECK(h.eng.cancel("cancel too").empty());
  REQUIRE(h.eng.on_result(ok_result(h.eng, 0)));
  CHECK_EQ(h.eng.tasks()[0].status, task_status::failed);
  CHECK_EQ(h.eng.error_of(0), "Run exceeded limits.maxRunMinutes (1 min).");
  CHECK_FALSE(h.eng.done());
  h.sync();
  CHECK(h.eng.done());
  CHECK_EQ(h.eng.status(), run_status::failed);
  CHECK_EQ(h.eng.summary(), "Run exceeded limits.maxRunMinutes (1 min).");
  h.sync();
  CHECK(h.eng.finished());
  check_one_terminal_each(h);
  check_replay(h);
}

TEST_CASE("run_engine: backlog bound pauses dispatch until on_durable") {
  engine_options opts;
  opts.max_concurrent = 100;
  opts.backlog_limit = 3;
  harness h{independent(20), opts};
  h.eng.start("go", false);
  uint32_t dispatched = 0;
  int rounds = 0;
  while (dispatched < 20 && rounds++ < 100) {
    auto out = h.dispatch();
    CHECK_FALSE(out.empty());
    CHECK_LE(h.eng.last_seq() - h.eng.durable_seq(), opts.backlog_limit);
    dispatched += static_cast<uint32_t>(out.size());
    // paused: nothing more until the backlog becomes durable
    CHECK(h.dispatch().empty());
    h.flush();
    CHECK(h.dispatch().empty());
    if (dispatched < 20)
      CHECK_GE(h.eng.last_seq() - h.eng.durable_seq(), opts.backlog_limit);
    h.eng.on_durable(h.eng.last_seq());
  }
  CHECK_EQ(dispatched, 20u);
  CHECK_GT(rounds, 5); // it really was throttled
  for (uint32_t i = 0; i < 20; ++i)
    REQUIRE(h.eng.on_result(ok_result(h.eng, i)));
  h.sync();
  h.sync();
  CHECK(h.eng.finished());
  CHECK_EQ(h.eng.status(), run_status::completed);
  check_replay(h);
}

TEST_CASE("run_engine: stale and unknown results are ignored") {
  harness h{independent(2)};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), idx_vec{0});
  auto seq = h.eng.last_seq();
  auto stale = ok_result(h.eng, 0);
  stale.attempt = 7;
  CHECK_FALSE(h.eng.on_result(stale));
  auto queued = ok_result(h.eng, 1); // t2 is not running
  CHECK_FALSE(h.eng.on_result(queued));
  auto unknown = ok_result(h.eng, 0);
  unknown.index = 99;
  CHECK_FALSE(h.eng.on_result(unknown));
  CHECK_EQ(h.eng.last_seq(), seq); // no event
  CHECK_EQ(h.eng.tasks()[0].status, task_status::running);
  CHECK_EQ(h.eng.tasks()[1].status, task_status::queued);
  auto good = ok_result(h.eng, 0);
  CHECK(h.eng.on_result(good));
  CHECK_FALSE(h.eng.on_result(good)); // duplicate
  h.sync();
  CHECK_EQ(h.dispatch(), idx_vec{1});
  REQUIRE(h.eng.on_result(fail_result(h.eng, 1)));
  CHECK_FALSE(h.eng.on_result(ok_result(h.eng, 1))); // after the end
  h.sync();
  h.sync();
  CHECK(h.eng.finished());
  CHECK_EQ(h.eng.status(), run_status::failed);
  check_one_terminal_each(h);
  check_replay(h);
}

TEST_CASE("run_engine: resume requeues every task that did not complete") {
  // a -> b -> c ; d -> e
  auto plan = make_plan({"a", "b", "c", "d", "e"}, {{}, {0}, {1}, {}, {3}});
  engine_options opts;
  opts.max_concurrent = 2;
  harness h{plan, opts};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), (idx_vec{0, 3}));
  h.sync();
  REQUIRE(h.eng.on_result(ok_result(h.eng, 0)));
  h.sync();
  CHECK_EQ(h.dispatch(), idx_vec{1});
  h.sync();
  REQUIRE(h.eng.on_result(fail_result(h.eng, 1)));
  h.sync(); // c skipped
  h.sync();
  REQUIRE_FALSE(h.eng.done()); // d still running: the process "dies" here
  auto before = replay_log(h.log, plan);
  REQUIRE(before.violations.empty());
  CHECK_EQ(before.tasks[0].status, task_status::completed);
  CHECK_EQ(before.tasks[1].status, task_status::failed);
  CHECK_EQ(before.tasks[2].status, task_status::skipped);
  CHECK_EQ(before.tasks[3].status, task_status::running);
  CHECK_EQ(before.tasks[4].status, task_status::queued);
  auto requeue_from = before.last_seq;

  run_engine eng2{run_id, plan, before.last_seq, opts};
  eng2.load_states(before.tasks);
  CHECK_EQ(eng2.progress().completed, 1u);
  CHECK_EQ(eng2.progress().failed, 1u);
  CHECK_EQ(eng2.progress().running, 1u);
  eng2.start("Resuming team workflow.", true);
  test::append_to(h.log, eng2.take_events());
  // requeued: b, c, d (failed, skipped, running); not a (completed), not e
  std::vector<std::string> requeued;
  std::string prev_status_of_b;
  for_each_event(h.log, [&](const event_view& ev) {
    if (ev.seq > requeue_from && ev.type == "task.requeued") {
      requeued.emplace_back(ev.task_id);
      if (ev.task_id == "b")
        prev_status_of_b = std::string{ev.data_raw};
    }
  });
  CHECK_EQ(requeued, (std::vector<std::string>{"b", "c", "d"}));
  CHECK_EQ(prev_status_of_b, R"({"previousStatus":"failed"})");
  for (uint32_t i : {1u, 2u, 3u, 4u})
    CHECK_EQ(eng2.tasks()[i].status, task_status::queued);
  CHECK_EQ(eng2.tasks()[0].status, task_status::completed);
  CHECK(eng2.error_of(1).empty());
  eng2.on_durable(eng2.last_seq());
  idx_vec out;
  eng2.next_dispatch(out);
  CHECK_EQ(out, (idx_vec{1, 3})); // a is done, so b is ready at once
  CHECK_EQ(eng2.tasks()[1].attempt, 2u); // attempts continue
  auto stale = ok_result(eng2, 1);
  stale.attempt = 1;
  CHECK_FALSE(eng2.on_result(stale));
  // run everything else to completion
  std::deque<uint32_t> running{out.begin(), out.end()};
  for (int guard = 0; guard < 1000 && !eng2.finished(); ++guard) {
    if (!running.empty()) {
      auto i = running.front();
      running.pop_front();
      REQUIRE(eng2.on_result(ok_result(eng2, i)));
    }
    test::append_to(h.log, eng2.take_events());
    eng2.on_durable(eng2.last_seq());
    out.clear();
    eng2.next_dispatch(out);
    running.insert(running.end(), out.begin(), out.end());
  }
  REQUIRE(eng2.finished());
  CHECK_EQ(eng2.status(), run_status::completed);
  for (auto& t : eng2.tasks())
    CHECK_EQ(t.status, task_status::completed);
  auto after = replay_log(h.log, plan);
  CHECK(after.violations.empty());
  CHECK(after.seq_contiguous);
  CHECK_EQ(after.status, run_status::completed);
  CHECK_EQ(after.last_seq, eng2.last_seq());
  for (uint32_t i = 0; i < plan.size(); ++i) {
    INFO("task ", plan[i].id);
    auto mem = eng2.to_task_state(i);
    CHECK_EQ(after.tasks[i].status, mem.status);
    CHECK_EQ(after.tasks[i].error, mem.error);
    // tasks re-run in this process: timestamps must match the log
    if (i != 0) {
      CHECK_EQ(after.tasks[i].started_at, mem.started_at);
      CHECK_EQ(after.tasks[i].finished_at, mem.finished_at);
    }
  }
}

TEST_CASE("run_engine: resume with nothing left completes the run") {
  harness h{independent(2)};
  std::vector<task_state> states(2);
  for (auto& s : states) {
    s.status = task_status::completed;
    s.attempts.resize(1);
  }
  h.eng.load_states(states);
  h.eng.start("Resuming team workflow.", true);
  CHECK(h.eng.done());
  CHECK_EQ(h.eng.status(), run_status::completed);
  auto bytes = h.eng.take_events();
  CHECK_EQ(bytes.find("task.requeued"), std::string::npos);
}

TEST_CASE("run_engine: an empty plan completes") {
  harness h{std::vector<planned_task>{}};
  h.eng.start("go", false);
  CHECK(h.eng.done());
  CHECK_EQ(h.eng.status(), run_status::completed);
  CHECK_FALSE(h.eng.finished());
  CHECK(h.dispatch().empty());
  h.sync();
  CHECK(h.eng.finished());
  auto evs = events_of(h.log);
  REQUIRE_EQ(evs.size(), 3u);
  CHECK_EQ(evs[1].first, "run.running");
  CHECK_EQ(evs[2].first, "run.completed");
  check_replay(h);
}

TEST_CASE("run_engine: a dependency cycle blocks the run") {
  auto plan = make_plan({"a", "b", "c"}, {{}, {2}, {1}});
  harness h{plan};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), idx_vec{0});
  REQUIRE(h.eng.on_result(ok_result(h.eng, 0)));
  h.sync();
  CHECK(h.eng.done());
  CHECK_EQ(h.eng.status(), run_status::blocked);
  CHECK_EQ(h.eng.tasks()[1].status, task_status::skipped);
  CHECK_EQ(h.eng.tasks()[2].status, task_status::skipped);
  h.sync();
  CHECK(h.eng.finished());
  check_one_terminal_each(h);
  check_replay(h);
}

TEST_CASE("run_engine: task.started carries attempt, role, agent, runtime") {
  engine_options opts;
  opts.runtime = "sim";
  harness h{independent(1), opts};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), idx_vec{0});
  h.flush();
  std::string data;
  for_each_event(h.log, [&](const event_view& ev) {
    if (ev.type == "task.started")
      data = std::string{ev.data_raw};
  });
  CHECK_EQ(data,
           R"({"attempt":1,"role":"worker","agent":"worker","runtime":"sim"})");
}

// A cancelled attempt's exit code is not the task's: engine and replay agree
// that a cancelled task has none.
TEST_CASE("run_engine: a cancelled attempt's exit code agrees with replay") {
  harness h{independent(1)};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), idx_vec{0});
  h.eng.cancel("stop");
  REQUIRE(h.eng.on_result(ok_result(h.eng, 0)));
  h.sync();
  h.sync();
  REQUIRE(h.eng.finished());
  auto rs = replay_log(h.log, h.plan);
  REQUIRE_EQ(rs.tasks[0].status, task_status::cancelled);
  CHECK_EQ(rs.tasks[0].has_exit_code, h.eng.to_task_state(0).has_exit_code);
}

// After a resume, snapshots keep startedAt/finishedAt of tasks completed
// before the interruption, as a replay of the log does.
TEST_CASE("run_engine: resume keeps the timestamps of completed tasks") {
  harness h{independent(2)};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), (idx_vec{0}));
  REQUIRE(h.eng.on_result(ok_result(h.eng, 0)));
  h.sync();
  auto before = replay_log(h.log, h.plan);
  REQUIRE_EQ(before.tasks[0].status, task_status::completed);
  REQUIRE_FALSE(before.tasks[0].finished_at.empty());
  run_engine eng2{run_id, h.plan, before.last_seq, {}};
  eng2.load_states(before.tasks);
  eng2.start("Resuming team workflow.", true);
  auto mem = eng2.to_task_state(0);
  CHECK_EQ(mem.started_at, before.tasks[0].started_at);
  CHECK_EQ(mem.finished_at, before.tasks[0].finished_at);
}

// -- adaptive plans -------------------------------------------------------------

namespace {

/// The `adaptive.plan_injected` data for `tasks` (only what replay reads).
std::string injected_data(const std::vector<planned_task>& tasks) {
  std::string out = R"({"phases":[],"tasks":[)";
  for (size_t i = 0; i < tasks.size(); ++i) {
    auto& t = tasks[i];
    out += (i > 0 ? "," : "");
    out += R"({"id":")" + t.id + R"(","stepId":")" + t.step_id
           + R"(","role":"worker","agent":"worker","title":"","model":"",)"
           + R"("task":"do it","dependsOn":[)";
    for (size_t d = 0; d < t.depends_on.size(); ++d)
      out += (d > 0 ? ",\"" : "\"") + t.depends_on[d] + "\"";
    out += "]}";
  }
  return out + "]}";
}

/// Appends x (after the planner `assess`) and y (after x) to `plan`.
void grow(std::vector<planned_task>& plan) {
  auto n = static_cast<uint32_t>(plan.size());
  auto add = [&](std::string id, uint32_t dep) {
    auto& t = plan.emplace_back();
    t.id = t.step_id = t.title = std::move(id);
    t.role = t.agent = "worker";
    t.deps = {dep};
    t.depends_on = {plan[dep].id};
  };
  add("adaptive-01-x", 0);
  add("adaptive-02-y", n);
}

} // namespace

TEST_CASE("run_engine: an adaptive planner pauses the run until its tasks are "
          "injected, which then run after it in order") {
  engine_options opts;
  opts.max_concurrent = 4;
  opts.adaptive_assess = 0;
  harness h{make_plan({"assess", "side"}, {}), opts};
  auto original = h.plan;
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), (idx_vec{0, 1}));
  REQUIRE(h.eng.on_result(ok_result(h.eng, 1)));
  REQUIRE(h.eng.on_result(ok_result(h.eng, 0)));
  CHECK_FALSE(h.eng.adaptive_pending()); // not durable yet
  CHECK_FALSE(h.eng.done());
  h.sync();
  REQUIRE(h.eng.adaptive_pending());
  h.sync();
  CHECK_FALSE(h.eng.done()); // every task ended, yet the run waits

  grow(h.plan);
  std::vector<planned_task> added{h.plan.begin() + 2, h.plan.end()};
  h.eng.inject(h.plan, {}, "Adaptive plan injected: 2 tasks in 2 phases.",
               injected_data(added));
  CHECK_FALSE(h.eng.adaptive_pending());
  CHECK_EQ(h.eng.progress().queued, 2u);
  CHECK_EQ(h.dispatch(), idx_vec{2}); // y waits for x
  REQUIRE(h.eng.on_result(ok_result(h.eng, 2)));
  h.sync();
  drive(h, [](uint32_t) { return true; });
  CHECK_EQ(h.eng.status(), run_status::completed);
  auto evs = events_of(h.log);
  auto at = [&](const std::string& type, const std::string& task) {
    for (size_t i = 0; i < evs.size(); ++i)
      if (evs[i].first == type && evs[i].second == task)
        return i;
    return evs.size();
  };
  auto injected = at("adaptive.plan_injected", "");
  REQUIRE(injected < evs.size());
  CHECK(injected > at("task.completed", "assess"));
  CHECK(injected < at("task.started", "adaptive-01-x"));
  CHECK(at("task.started", "adaptive-02-y") > at("task.completed", "adaptive-01-x"));
  check_one_terminal_each(h);
  check_replay(h); // with the grown plan: nothing added twice
  // the log alone rebuilds the grown plan from the original one
  auto rs = replay_log(h.log, original);
  CHECK(rs.violations.empty());
  REQUIRE_EQ(rs.added.size(), 2u);
  CHECK_EQ(rs.added[1].id, "adaptive-02-y");
  CHECK_EQ(rs.added[1].depends_on, std::vector<std::string>{"adaptive-01-x"});
  REQUIRE_EQ(rs.tasks.size(), 4u);
  for (auto& t : rs.tasks)
    CHECK_EQ(t.status, task_status::completed);
}

TEST_CASE("run_engine: a planner without a usable plan skips what is queued "
          "and blocks the run") {
  engine_options opts;
  opts.adaptive_assess = 0;
  opts.max_concurrent = 1;
  harness h{make_plan({"assess", "after", "other"}, {{}, {0}, {}}), opts};
  h.eng.start("go", false);
  CHECK_EQ(h.dispatch(), idx_vec{0});
  REQUIRE(h.eng.on_result(ok_result(h.eng, 0)));
  h.sync();
  REQUIRE(h.eng.adaptive_pending());
  h.eng.record("adaptive.plan_missing", "no plan", "{}");
  h.eng.adaptive_blocked("Adaptive planner did not produce a valid subagent plan.");
  h.sync();
  REQUIRE(h.eng.finished());
  CHECK_EQ(h.eng.status(), run_status::blocked);
  CHECK_EQ(h.eng.summary(), "Adaptive planner did not produce a valid subagent plan.");
  CHECK_EQ(h.eng.tasks()[1].status, task_status::skipped);
  CHECK_EQ(h.eng.tasks()[2].status, task_status::skipped);
  CHECK(h.dispatch().empty());
  check_one_terminal_each(h);
  check_replay(h);
}

TEST_CASE("run_engine: a cancel while the planner's output is read ends the "
          "run, a late injection adds nothing") {
  engine_options opts;
  opts.adaptive_assess = 0;
  harness h{make_plan({"assess"}, {}), opts};
  h.eng.start("go", false);
  h.dispatch();
  REQUIRE(h.eng.on_result(ok_result(h.eng, 0)));
  h.sync();
  REQUIRE(h.eng.adaptive_pending());
  CHECK(h.eng.cancel("Run cancelled by user request.").empty());
  h.sync();
  REQUIRE(h.eng.finished());
  CHECK_EQ(h.eng.status(), run_status::cancelled);
  auto seq = h.eng.last_seq();
  auto grown = h.plan;
  grow(grown);
  h.eng.inject(grown, {}, "late", "{}");
  CHECK_EQ(h.eng.last_seq(), seq);
  CHECK_EQ(h.eng.tasks().size(), 1u);
}

TEST_CASE("run_engine: a resumed run whose planner completed but was never "
          "injected reads the plan first") {
  engine_options opts;
  opts.adaptive_assess = 0;
  harness h{make_plan({"assess"}, {}), opts};
  std::vector<task_state> states(1);
  states[0].status = task_status::completed;
  states[0].attempts.resize(1);
  h.eng.load_states(states);
  h.eng.start("Resuming team workflow.", true);
  CHECK(h.eng.adaptive_pending());
  CHECK_FALSE(h.eng.done());
  CHECK_EQ(h.eng.take_events().find("run.completed"), std::string::npos);
}

// Review F4: times loaded from checkpoint.bin (any int64) overflowed the
// conversion to a time_point in from_unix_ms.
TEST_CASE("run_engine: out-of-range times from a checkpoint are clamped") {
  auto plan = independent(1);
  run_checkpoint ck;
  auto& t = ck.tasks.emplace_back();
  t.status = task_status::completed;
  t.attempts = 2;
  t.started_ms = INT64_MAX;
  t.finished_ms = INT64_MIN;
  ck.history.push_back({0, {attempt_checkpoint{INT64_MAX, INT64_MAX, ""}}});
  run_engine eng{run_id, plan, 0, engine_options{}};
  eng.load_checkpoint(ck);
  auto st = eng.to_task_state(0);
  CHECK_EQ(st.started_at, "2262-04-11T23:47:16.854Z");
  CHECK_EQ(st.finished_at, "1677-09-21T00:12:43.146Z");
  REQUIRE_FALSE(st.attempts.empty());
  CHECK_EQ(st.attempts.front().ended_at, "2262-04-11T23:47:16.854Z");
}

// The same for a retry's due time: the wait handed to the run actor (which
// multiplies it into nanoseconds) stays within [0, 100 years].
TEST_CASE("run_engine: a resumed retry wait is bounded whatever its due time") {
  auto plan = independent(2);
  run_checkpoint ck;
  for (auto due : {INT64_MIN, INT64_MAX}) {
    auto& t = ck.tasks.emplace_back();
    t.status = task_status::running;
    t.waiting = true;
    t.attempts = 1;
    t.retry_due_ms = due;
  }
  run_engine eng{run_id, plan, 0, engine_options{}};
  eng.load_checkpoint(ck);
  eng.start("resume", true);
  auto retries = eng.take_retries();
  REQUIRE_EQ(retries.size(), 2u);
  CHECK_EQ(retries[0].second, 0u);
  CHECK_EQ(retries[1].second, uint64_t{100} * 365 * 24 * 3600 * 1000);
}
