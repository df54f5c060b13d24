// A cancel or a limits.maxRunMinutes expiry is durable intent: the log
// records it before any worker is killed, and a crash never turns it into a
// `completed` run (correctness review 2026-12-02, findings 1 and 11).

#include "runtime/scheduling/run_engine.hpp"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "runtime/scheduling/planning.hpp"
#include "store/checkpoint.hpp"
#include "store/event_log.hpp"
#include "store/replay.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
namespace fs = std::filesystem;

namespace {

constexpr const char* run_id = "team_20250101000000_0badcafe";
constexpr const char* cancel_reason = "Run cancelled by user request.";
constexpr const char* expiry_reason = "Run exceeded limits.maxRunMinutes (1 min).";

using idx_vec = std::vector<uint32_t>;

std::vector<planned_task> chain(uint32_t n) {
  return synthetic_plan(graph_shape::chain, n, 1);
}

std::vector<planned_task> independent(uint32_t n) {
  auto plan = chain(n);
  for (auto& t : plan) {
    t.deps.clear();
    t.depends_on.clear();
  }
  return plan;
}

/// The checkpoint a new owner starts from after a full replay (as
/// prepare_resume builds it).
run_checkpoint checkpoint_of(replay_state rs) {
  auto ck = make_checkpoint(rs.tasks);
  ck.seq = rs.last_seq;
  ck.status = rs.status;
  ck.summary = std::move(rs.summary);
  ck.stop = std::move(rs.stop);
  return ck;
}

/// One event line of this run (for logs no engine would write).
std::string line(std::string_view type, std::string_view task,
                 std::string_view message, uint64_t seq) {
  std::string out;
  append_event_line(out, event_fields{type, run_id, task, message, {}, seq,
                                      std::chrono::system_clock::now()});
  return out;
}

/// One task at a time.
engine_options serial() {
  engine_options opts;
  opts.max_concurrent = 1;
  return opts;
}

struct event_row {
  uint64_t seq;
  std::string type;
  std::string task;
};

std::vector<event_row> events_of(const fs::path& log) {
  std::vector<event_row> out;
  for_each_event(log, [&](const event_view& ev) {
    out.push_back({ev.seq, std::string{ev.type}, std::string{ev.task_id}});
  });
  return out;
}

/// One run across the lives of its owners: the current owner's engine, the
/// log on disk, and the batches handed to the journal but not yet durable.
struct run_lives {
  test::temp_dir dir{"crew-stop"};
  fs::path log;
  std::vector<planned_task> plan;
  engine_options opts;
  std::unique_ptr<run_engine> eng;
  /// (last seq, bytes) of each batch in flight, oldest first
  std::deque<std::pair<uint64_t, std::string>> in_flight;

  explicit run_lives(std::vector<planned_task> p, engine_options o = {})
    : log(dir.path / "events.jsonl"), plan(std::move(p)), opts(std::move(o)) {
    test::append_to(log, line("run.created", {}, "Run created.", 1));
    eng = std::make_unique<run_engine>(run_id, plan, 1, opts);
    eng->start("Executing team workflow.", false);
    sync();
  }

  idx_vec dispatch() {
    idx_vec out;
    eng->next_dispatch(out);
    return out;
  }

  /// Starts the first task (alone) and makes that durable.
  void first_running() {
    REQUIRE_EQ(dispatch(), idx_vec{0});
    sync();
  }

  /// Every attempt succeeds from here on, until the run ends.
  void run_to_end() {
    for (int guard = 0; guard < 100 && !eng->finished(); ++guard) {
      for (auto i : dispatch())
        result(i, true);
      sync();
    }
    REQUIRE(eng->finished());
  }

  void result(uint32_t i, bool ok, int32_t signal = 0) {
    attempt_result r;
    r.index = i;
    r.attempt = eng->tasks()[i].attempt;
    r.ok = ok;
    r.exit_code = signal != 0 ? -1 : ok ? 0 : 1;
    r.signal = signal;
    r.error = ok ? "" : signal != 0 ? "killed by signal" : "exit code 1";
    r.duration_us = 1000;
    REQUIRE(eng->on_result(r));
  }

  /// Hands the buffered events to the journal (not durable yet).
  void flush() {
    if (eng->has_events())
      in_flight.emplace_back(eng->last_seq(), eng->take_events());
  }

  /// The oldest batch in flight becomes durable.
  void ack() {
    if (in_flight.empty())
      return;
    auto [seq, bytes] = std::move(in_flight.front());
    in_flight.pop_front();
    test::append_to(log, bytes);
    eng->on_durable(seq);
  }

  /// Everything becomes durable, as often as new events appear.
  void sync() {
    do {
      flush();
      while (!in_flight.empty())
        ack();
    } while (eng->has_events());
  }

  /// The owner dies. `batches` whole batches in flight and then `lines`
  /// lines of the next one reached the disk anyway; the rest is lost.
  replay_state crash(size_t batches = 0, size_t lines = 0) {
    flush();
    for (; batches > 0 && !in_flight.empty(); --batches) {
      test::append_to(log, in_flight.front().second);
      in_flight.pop_front();
    }
    if (!in_flight.empty()) {
      auto& bytes = in_flight.front().second;
      size_t end = 0;
      for (; lines > 0 && end < bytes.size(); --lines)
        end = bytes.find('\n', end) + 1;
      test::append_to(log, bytes.substr(0, end));
    }
    in_flight.clear();
    eng.reset();
    return replay_log(log, plan);
  }

  /// A new owner takes the run over from its log: `crew recover --apply`
  /// (`recover`) or `crew resume`.
  void restart(bool recover) {
    auto rs = replay_log(log, plan);
    REQUIRE(rs.violations.empty());
    eng = std::make_unique<run_engine>(run_id, plan, rs.last_seq, opts);
    eng->load_checkpoint(checkpoint_of(std::move(rs)));
    if (recover)
      eng->start_recovered("Recovered team workflow.");
    else
      eng->start("Resuming team workflow.", true);
  }

  size_t count(std::string_view type, uint64_t after_seq = 0) const {
    size_t n = 0;
    for (auto& e : events_of(log))
      n += e.seq > after_seq && e.type == type ? 1 : 0;
    return n;
  }
};

} // namespace

TEST_CASE("stop: a cancel records its intent first, and its workers may be "
          "killed only once that is durable") {
  engine_options opts;
  opts.max_concurrent = 2;
  run_lives r{independent(3), opts};
  CHECK_EQ(r.dispatch(), (idx_vec{0, 1}));
  r.sync();
  auto before = r.eng->last_seq();
  CHECK_EQ(r.eng->stop_seq(), 0u);
  auto kill = r.eng->cancel(cancel_reason);
  CHECK_EQ(kill, (idx_vec{0, 1}));
  CHECK(r.eng->stopping());
  CHECK_EQ(r.eng->stop_seq(), before + 1);
  CHECK_LT(r.eng->durable_seq(), r.eng->stop_seq()); // not yet: no kill
  auto ck = r.eng->checkpoint();
  CHECK_EQ(ck.stop.kind, stop_kind::cancel);
  CHECK_EQ(ck.stop.reason, cancel_reason);
  CHECK_EQ(ck.stop.seq, before + 1);
  r.sync();
  CHECK_GE(r.eng->durable_seq(), r.eng->stop_seq());
  auto evs = events_of(r.log);
  auto first = std::find_if(evs.begin(), evs.end(),
                            [&](auto& e) { return e.seq > before; });
  REQUIRE(first != evs.end());
  CHECK_EQ(first->type, "crew.run.cancel_requested");
  CHECK(first->task.empty());
  CHECK_EQ(std::next(first)->type, "task.cancelled");
  auto rs = replay_log(r.log, r.plan);
  CHECK_EQ(rs.stop.kind, stop_kind::cancel);
  CHECK_EQ(rs.stop.reason, cancel_reason);
  CHECK_EQ(rs.stop.seq, before + 1);
  CHECK(r.eng->cancel("again").empty()); // one intent
  CHECK_EQ(r.count("crew.run.cancel_requested"), 1u);
  r.result(0, true);
  r.result(1, false, 15);
  r.sync();
  REQUIRE(r.eng->finished());
  CHECK_EQ(r.eng->status(), run_status::cancelled);
}

TEST_CASE("stop: recovery of a run whose owner died while cancelling finishes "
          "the cancel") {
  // The review's reproduction: a -> b -> c, a running, cancel, kill -9.
  run_lives r{chain(3)};
  r.first_running();
  CHECK_EQ(r.eng->cancel(cancel_reason), idx_vec{0});
  r.sync(); // the worker of a ignores SIGTERM: the owner dies meanwhile
  auto rs = r.crash();
  CHECK_EQ(rs.status, run_status::running);
  CHECK_EQ(rs.stop.kind, stop_kind::cancel);
  CHECK_EQ(rs.tasks[0].status, task_status::running);
  CHECK_EQ(rs.tasks[1].status, task_status::cancelled);
  auto from = rs.last_seq;

  r.restart(true);
  CHECK(r.eng->done()); // nothing to dispatch: the cancel only finishes
  CHECK(r.dispatch().empty());
  CHECK_EQ(r.eng->status(), run_status::cancelled);
  CHECK_EQ(r.eng->summary(), cancel_reason);
  r.sync();
  CHECK(r.eng->finished());
  auto after = replay_log(r.log, r.plan);
  CHECK(after.violations.empty());
  CHECK(after.seq_contiguous);
  CHECK_EQ(after.status, run_status::cancelled);
  CHECK_EQ(after.summary, cancel_reason);
  for (auto& t : after.tasks)
    CHECK_EQ(t.status, task_status::cancelled);
  CHECK_EQ(after.tasks[0].error, cancel_reason);
  CHECK_EQ(after.tasks[0].attempts.size(), 1u); // a did not run again
  CHECK_EQ(r.count("task.requeued", from), 0u);
  CHECK_EQ(r.count("task.started", from), 0u);
  CHECK_EQ(r.count("run.running", from), 0u);
  CHECK_EQ(r.count("crew.run.resumed", from), 1u);
  for (uint32_t i = 0; i < r.plan.size(); ++i) {
    CHECK_EQ(r.eng->to_task_state(i).status, after.tasks[i].status);
    CHECK_EQ(r.eng->to_task_state(i).error, after.tasks[i].error);
    CHECK_EQ(r.eng->to_task_state(i).attempts.size(), after.tasks[i].attempts.size());
  }
}

TEST_CASE("stop: recovery of an interrupted expiry fails the run") {
  run_lives r{independent(3), serial()};
  r.first_running();
  CHECK_EQ(r.eng->expire(expiry_reason), idx_vec{0});
  CHECK_EQ(r.eng->checkpoint().stop.kind, stop_kind::expire);
  // Only the intent reached the disk: the skips after it are lost too.
  auto rs = r.crash(0, 1);
  CHECK_EQ(rs.stop.kind, stop_kind::expire);
  CHECK_EQ(rs.stop.reason, expiry_reason);
  CHECK_EQ(rs.tasks[1].status, task_status::queued);
  auto from = rs.last_seq;
  r.restart(true);
  r.sync();
  REQUIRE(r.eng->finished());
  CHECK_EQ(r.eng->status(), run_status::failed);
  CHECK_EQ(r.eng->summary(), expiry_reason);
  auto after = replay_log(r.log, r.plan);
  CHECK(after.violations.empty());
  CHECK_EQ(after.status, run_status::failed);
  CHECK_EQ(after.tasks[0].status, task_status::failed);
  CHECK_EQ(after.tasks[0].error, expiry_reason);
  CHECK_EQ(after.tasks[1].status, task_status::skipped);
  CHECK_EQ(after.tasks[2].status, task_status::skipped);
  CHECK_EQ(r.count("task.requeued", from), 0u);
}

TEST_CASE("stop: a retry waiting when the owner died while cancelling ends "
          "cancelled, without its retry") {
  engine_options opts;
  opts.max_concurrent = 2;
  opts.retry.enabled = true;
  opts.retry.max_attempts = 3;
  opts.retry.backoff_ms = 60'000;
  run_lives r{independent(3), opts};
  CHECK_EQ(r.dispatch(), (idx_vec{0, 1}));
  r.result(0, false); // waits for its retry
  REQUIRE(r.eng->tasks()[0].waiting);
  r.sync();
  CHECK_EQ(r.eng->cancel(cancel_reason), idx_vec{1});
  auto rs = r.crash(0, 1); // the intent only
  REQUIRE_EQ(rs.stop.kind, stop_kind::cancel);
  REQUIRE_NE(rs.tasks[0].retry_due_ms, 0);
  r.restart(true);
  CHECK(r.eng->take_retries().empty());
  r.sync();
  REQUIRE(r.eng->finished());
  CHECK_EQ(r.eng->status(), run_status::cancelled);
  auto after = replay_log(r.log, r.plan);
  CHECK(after.violations.empty());
  for (auto& t : after.tasks)
    CHECK_EQ(t.status, task_status::cancelled);
  CHECK_EQ(after.tasks[0].attempts.size(), 1u);
}

TEST_CASE("stop: an explicit resume after a cancel is a new decision: it "
          "withdraws the intent, and a later recovery continues the run") {
  run_lives r{chain(3)};
  r.first_running();
  r.eng->cancel(cancel_reason);
  r.crash(1);
  r.restart(false); // crew resume
  CHECK_FALSE(r.eng->stopping());
  CHECK_EQ(r.eng->checkpoint().stop.kind, stop_kind::none);
  CHECK_EQ(r.dispatch(), idx_vec{0});
  r.sync();
  auto rs = replay_log(r.log, r.plan);
  CHECK_FALSE(rs.stop.requested()); // run.running withdrew it
  CHECK_EQ(rs.tasks[1].status, task_status::queued);
  r.crash();
  r.restart(true); // recovery of the resumed run requeues what was cut off
  r.run_to_end();
  CHECK_EQ(r.eng->status(), run_status::completed);
  auto after = replay_log(r.log, r.plan);
  CHECK(after.violations.empty());
  CHECK_EQ(after.status, run_status::completed);
  for (auto& t : after.tasks)
    CHECK_EQ(t.status, task_status::completed);
}

TEST_CASE("stop: a cancel or expiry racing the last completion leaves the run "
          "completed") {
  for (bool expiry : {false, true}) {
    CAPTURE(expiry);
    run_lives r{chain(2)};
    CHECK_EQ(r.dispatch(), idx_vec{0});
    r.result(0, true);
    r.sync();
    CHECK_EQ(r.dispatch(), idx_vec{1});
    r.result(1, true);
    r.flush(); // task.completed of the last task is not durable yet
    auto seq = r.eng->last_seq();
    auto kill = expiry ? r.eng->expire(expiry_reason) : r.eng->cancel(cancel_reason);
    CHECK(kill.empty());
    CHECK_FALSE(r.eng->stopping());
    CHECK_EQ(r.eng->last_seq(), seq); // no intent: nothing left to stop
    r.sync();
    REQUIRE(r.eng->finished());
    CHECK_EQ(r.eng->status(), run_status::completed);
    CHECK_EQ(replay_log(r.log, r.plan).status, run_status::completed);
  }
}

TEST_CASE("stop: a cancel while a task still runs is not undone by that task "
          "completing: the run ends cancelled") {
  run_lives r{independent(1)};
  CHECK_EQ(r.dispatch(), idx_vec{0});
  CHECK_EQ(r.eng->cancel(cancel_reason), idx_vec{0});
  r.result(0, true); // it finished before the kill reached it
  r.sync();
  REQUIRE(r.eng->finished());
  CHECK_EQ(r.eng->status(), run_status::cancelled);
  CHECK_EQ(r.eng->tasks()[0].status, task_status::cancelled);
}

TEST_CASE("stop: a log cancelled before intents were recorded never recovers "
          "as completed") {
  for (bool expiry : {false, true}) {
    CAPTURE(expiry);
    run_lives r{independent(3), serial()};
    r.first_running();
    // What an older crew wrote before it died in the kill grace.
    auto seq = r.eng->last_seq();
    auto st = expiry ? "task.skipped" : "task.cancelled";
    test::append_to(r.log, line(st, "t2", "stop", seq + 1)
                             + line(st, "t3", "stop", seq + 2));
    r.crash();
    r.restart(true);
    r.run_to_end();
    CHECK_EQ(r.eng->tasks()[0].status, task_status::completed);
    CHECK_EQ(r.eng->status(), expiry ? run_status::failed : run_status::cancelled);
    CHECK_EQ(r.eng->summary(), expiry ? "Not every task completed: 2 skipped."
                                      : "Not every task completed: 2 cancelled.");
  }
}

TEST_CASE("stop: checkpoints carry the intent, and a tail replay over it "
          "agrees with the full replay") {
  run_lives r{independent(3), serial()};
  r.first_running();
  auto before = r.eng->checkpoint();
  r.eng->cancel(cancel_reason);
  r.sync();
  auto during = r.eng->checkpoint();
  // through checkpoint.bin
  auto path = r.dir.path / "checkpoint.bin";
  test::append_to(path, checkpoint_bin(during));
  auto read = read_checkpoint(path);
  REQUIRE(read);
  CHECK_EQ(read->stop.kind, stop_kind::cancel);
  CHECK_EQ(read->stop.reason, cancel_reason);
  CHECK_EQ(read->stop.seq, during.stop.seq);
  // the events after `before` hold the intent
  auto end = find_seq_end(r.log, before.seq);
  REQUIRE(end);
  auto rep = replay_tail(r.log, *end, r.plan, before);
  CHECK(rep.violations.empty());
  auto full = replay_log(r.log, r.plan);
  CHECK_EQ(before.stop.kind, full.stop.kind);
  CHECK_EQ(before.stop.reason, full.stop.reason);
  CHECK_EQ(before.stop.seq, full.stop.seq);
  CHECK_EQ(before.stop.seq, during.stop.seq);
  // a resume withdraws it, in the tail replay as in the full one
  r.crash();
  r.restart(false);
  r.sync();
  auto end2 = find_seq_end(r.log, during.seq);
  REQUIRE(end2);
  replay_tail(r.log, *end2, r.plan, during);
  CHECK_FALSE(during.stop.requested());
  CHECK_FALSE(replay_log(r.log, r.plan).stop.requested());
}

// -- model check ----------------------------------------------------------------

namespace {

/// What the model check saw, over all schedules (to check it did explore).
struct coverage {
  uint64_t stops = 0;            ///< cancels and expiries with an intent
  uint64_t recovered_stops = 0;  ///< recoveries that found an intent
  uint64_t recoveries = 0;
  uint64_t resumes = 0;
  uint64_t ignored_stops = 0;    ///< stops after every task had ended
  uint64_t completed = 0, cancelled = 0, failed = 0;
};

/// One random schedule: results, failures, retries, partial durability,
/// cancel, expiry, crashes (with a random part of the un-acked batches on
/// disk) and recovery or resume, checking the invariants as it goes.
void random_schedule(uint64_t seed, coverage& cov) {
  CAPTURE(seed);
  std::mt19937_64 rng{seed};
  auto chance = [&](double p) {
    return std::uniform_real_distribution<double>{0, 1}(rng) < p;
  };
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const graph_shape shapes[] = {graph_shape::chain, graph_shape::fanout,
                                graph_shape::diamond, graph_shape::random};
  auto n = static_cast<uint32_t>(1 + pick(6));
  auto plan = synthetic_plan(shapes[pick(4)], n, seed);
  engine_options opts;
  opts.max_concurrent = static_cast<uint32_t>(1 + pick(3));
  opts.notes = false;
  if (chance(0.5)) {
    opts.retry.enabled = true;
    opts.retry.max_attempts = 2;
    opts.retry.backoff_ms = 1000;
  }
  run_lives r{plan, opts};

  // The workers of the current owner: task -> killed (SIGTERM reached it).
  std::map<uint32_t, bool> workers;
  std::set<uint32_t> waiting;
  idx_vec kill_pending;
  int crashes = 0, resumes = 0;

  auto kill_when_durable = [&] {
    if (kill_pending.empty() || r.eng->durable_seq() < r.eng->stop_seq())
      return;
    // The intent is on disk before any worker is killed.
    CHECK(replay_log(r.log, plan).stop.requested());
    for (auto i : kill_pending)
      if (auto w = workers.find(i); w != workers.end())
        w->second = true;
    kill_pending.clear();
  };
  auto take_retries = [&] {
    for (auto [i, delay] : r.eng->take_retries())
      waiting.insert(i);
  };
  auto new_owner = [&](bool recover) {
    auto rs = replay_log(r.log, plan);
    REQUIRE(rs.violations.empty());
    r.restart(recover);
    workers.clear(); // the orphaned workers were killed
    waiting.clear();
    kill_pending.clear();
    take_retries();
    auto& t = r.eng->tasks();
    if (recover) {
      ++cov.recoveries;
      // Recovery keeps every ended task as it is: no cancelled task runs again.
      for (uint32_t i = 0; i < n; ++i)
        if (is_terminal(rs.tasks[i].status))
          CHECK_EQ(t[i].status, rs.tasks[i].status);
      if (rs.stop.requested()) {
        ++cov.recovered_stops;
        CHECK(r.eng->done());
        for (uint32_t i = 0; i < n; ++i)
          CHECK(is_terminal(t[i].status));
        r.flush();
        REQUIRE_FALSE(r.in_flight.empty());
        CHECK(r.in_flight.back().second.find("task.requeued") == std::string::npos);
      }
    } else {
      ++cov.resumes;
    }
  };

  for (int step = 0; step < 4000; ++step) {
    if (r.eng->finished()) {
      auto st = r.eng->status();
      if (st == run_status::completed || resumes >= 2 || !chance(0.3))
        break;
      ++resumes;
      new_owner(false); // `crew resume` of a finished run
      continue;
    }
    for (auto i : r.dispatch())
      workers[i] = false;
    take_retries();
    auto action = pick(100);
    if (action < 30 && !workers.empty()) {
      auto w = std::next(workers.begin(), static_cast<long>(pick(workers.size())));
      auto [i, killed] = *w;
      workers.erase(w);
      if (killed)
        r.result(i, false, 15);
      else
        r.result(i, chance(0.8));
    } else if (action < 50) {
      r.flush();
    } else if (action < 75) {
      r.ack();
    } else if (action < 82 && !waiting.empty()) {
      auto w = std::next(waiting.begin(), static_cast<long>(pick(waiting.size())));
      r.eng->retry_due(*w);
      waiting.erase(w);
    } else if (action < 84 && !r.eng->stopping()) {
      bool all_ended = true;
      for (auto& t : r.eng->tasks())
        all_ended = all_ended && is_terminal(t.status);
      auto kill = chance(0.5) ? r.eng->cancel(cancel_reason)
                              : r.eng->expire(expiry_reason);
      if (r.eng->stopping()) {
        ++cov.stops;
      } else {
        CHECK(all_ended);
        ++cov.ignored_stops;
      }
      kill_pending.insert(kill_pending.end(), kill.begin(), kill.end());
    } else if (action < 86 && crashes < 3) {
      ++crashes;
      auto rs = r.crash(pick(3), pick(4));
      CHECK(rs.violations.empty());
      if (is_terminal(rs.status)) {
        // The final event made it: the run is over (as recover would say).
        break;
      }
      REQUIRE_EQ(rs.status, run_status::running);
      if (resumes < 2 && chance(0.2)) {
        ++resumes;
        new_owner(false);
      } else {
        new_owner(true);
      }
      continue;
    }
    kill_when_durable();
  }
  if (r.eng) {
    // Drain: every worker ends, everything becomes durable.
    for (int guard = 0; guard < 1000 && !r.eng->finished(); ++guard) {
      for (auto i : r.dispatch())
        workers[i] = false;
      take_retries();
      for (auto i : waiting)
        r.eng->retry_due(i);
      waiting.clear();
      auto running = workers;
      workers.clear();
      for (auto [i, killed] : running)
        r.result(i, !killed);
      r.sync();
      kill_when_durable();
    }
    REQUIRE_MESSAGE(r.eng->finished(), "the run never ended");
  }

  auto rs = replay_log(r.log, plan);
  for (auto& v : rs.violations)
    MESSAGE(v);
  CHECK(rs.violations.empty()); // one terminal event per task (per requeue)
  CHECK(rs.seq_contiguous);
  REQUIRE(is_terminal(rs.status));
  bool all_completed = true;
  for (auto& t : rs.tasks) {
    CHECK(is_terminal(t.status));
    all_completed = all_completed && t.status == task_status::completed;
  }
  CHECK_EQ(rs.status == run_status::completed, all_completed);
  if (rs.stop.requested()) {
    CHECK_EQ(rs.status, rs.stop.kind == stop_kind::expire ? run_status::failed
                                                          : run_status::cancelled);
    // After the intent nothing ran or restarted.
    for (auto& e : events_of(r.log)) {
      bool ran = e.type == "task.started" || e.type == "task.requeued"
                 || e.type == "task.completed";
      if (e.seq > rs.stop.seq)
        CHECK_MESSAGE(!ran, e.type, " of ", e.task, " at seq ", e.seq);
    }
  }
  if (r.eng) {
    CHECK_EQ(r.eng->status(), rs.status);
    for (uint32_t i = 0; i < n; ++i) {
      CHECK_EQ(r.eng->to_task_state(i).status, rs.tasks[i].status);
      CHECK_EQ(r.eng->to_task_state(i).error, rs.tasks[i].error);
    }
  }
  cov.completed += rs.status == run_status::completed;
  cov.cancelled += rs.status == run_status::cancelled;
  cov.failed += rs.status == run_status::failed;
}

} // namespace

TEST_CASE("stop: model check of random schedules with cancel, expiry, crashes "
          "and recovery") {
  // CREW_STOP_SCHEDULES=20000 explores longer.
  uint64_t schedules = 600;
  if (auto env = std::getenv("CREW_STOP_SCHEDULES"))
    schedules = std::strtoull(env, nullptr, 10);
  coverage cov;
  for (uint64_t seed = 1; seed <= schedules; ++seed)
    random_schedule(seed, cov);
  MESSAGE("stops ", cov.stops, ", recovered stops ", cov.recovered_stops,
          ", recoveries ", cov.recoveries, ", resumes ", cov.resumes,
          ", ignored stops ", cov.ignored_stops, "; completed ", cov.completed,
          ", cancelled ", cov.cancelled, ", failed ", cov.failed);
  if (schedules >= 600) {
    CHECK_GT(cov.recovered_stops, 10u);
    CHECK_GT(cov.resumes, 10u);
    CHECK_GT(cov.completed, 10u);
    CHECK_GT(cov.cancelled, 10u);
  }
}
