#include "store/replay.hpp"

#include <fstream>

#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "store/clock.hpp"
#include "store/event_log.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
using namespace std::chrono;
namespace fs = std::filesystem;

namespace {

system_clock::time_point t(uint64_t seq) {
  return sys_days{year{2026} / 11 / 26} + seconds{seq};
}

std::string ts(uint64_t seq) {
  return iso_time(t(seq));
}

struct script {
  std::string text;

  script& add(uint64_t seq, std::string_view type, std::string_view task = {},
              std::string_view msg = {}, std::string_view data = {}) {
    append_event_line(
        text, event_fields{type, "team_1", task, msg, data, seq, t(seq)});
    return *this;
  }

  void write(const fs::path& p) const {
    std::ofstream out{p, std::ios::binary | std::ios::trunc};
    out << text;
  }
};

std::vector<planned_task> three_tasks() {
  std::vector<planned_task> plan(3);
  plan[0].id = "01_a";
  plan[0].step_id = "a";
  plan[1].id = "02_b";
  plan[1].step_id = "b";
  plan[1].depends_on = {"a"};
  plan[1].deps = {0};
  plan[2].id = "03_c";
  plan[2].step_id = "c";
  return plan;
}

bool any_contains(const std::vector<std::string>& xs, std::string_view s) {
  for (const auto& x : xs)
    if (x.find(s) != std::string::npos)
      return true;
  return false;
}

} // namespace

TEST_CASE("replay: rebuilds task states, attempts and violations") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  script s;
  s.add(1, "run.created", {}, {}, R"({"team":"t","workflow":"w"})")
      .add(2, "run.running", {}, "Running")
      .add(3, "task.started", "01_a", {}, R"({"attempt":1})")
      .add(4, "task.failed", "01_a", "boom", R"({"attempt":1,"exitCode":3})")
      .add(5, "task.requeued", "01_a")
      .add(6, "task.started", "01_a", {}, R"({"attempt":2})")
      .add(7, "task.completed", "01_a", {}, R"({"attempt":2,"exitCode":0})")
      .add(8, "task.started", "02_b", {}, R"({"attempt":1})")
      .add(9, "task.cancelled", "02_b", "run cancelled")
      .add(10, "task.skipped", "03_c", "dependency failed")
      .add(11, "task.skipped", "03_c", "again")
      .add(12, "task.progress", {}, "Starting ready batch with 1 task(s).",
           R"({"taskIds":["01_a"],"nested":{"exitCode":9}})")
      .add(13, "task.started", "99_x")
      .add(15, "run.cancelled", {}, "Cancelled by user")
      .add(16, "weird.future_type", "01_a", "ignored", R"([1,2,3])");
  s.write(path);
  auto st = replay_log(path, three_tasks());
  CHECK_EQ(st.status, run_status::cancelled);
  CHECK_EQ(st.summary, "Cancelled by user");
  CHECK_EQ(st.events, 15u);
  CHECK_EQ(st.last_seq, 16u);
  CHECK_FALSE(st.seq_contiguous);
  CHECK_EQ(st.first_gap_seq, 14u);
  CHECK_FALSE(st.torn_tail);
  REQUIRE_EQ(st.tasks.size(), 3u);
  auto& a = st.tasks[0];
  CHECK_EQ(a.status, task_status::completed);
  CHECK_EQ(a.started_at, ts(6));
  CHECK_EQ(a.finished_at, ts(7));
  CHECK(a.error.empty());
  CHECK(a.has_exit_code);
  CHECK_EQ(a.exit_code, 0);
  REQUIRE_EQ(a.attempts.size(), 2u);
  CHECK_EQ(a.attempts[0].started_at, ts(3));
  CHECK_EQ(a.attempts[0].ended_at, ts(4));
  CHECK_EQ(a.attempts[0].error, "boom");
  CHECK_EQ(a.attempts[1].started_at, ts(6));
  CHECK_EQ(a.attempts[1].ended_at, ts(7));
  CHECK(a.attempts[1].error.empty());
  auto& b = st.tasks[1];
  CHECK_EQ(b.status, task_status::cancelled);
  CHECK_EQ(b.error, "run cancelled");
  CHECK_EQ(b.finished_at, ts(9));
  REQUIRE_EQ(b.attempts.size(), 1u);
  CHECK_EQ(b.attempts[0].ended_at, ts(9));
  CHECK_EQ(b.attempts[0].error, "run cancelled");
  CHECK_FALSE(b.has_exit_code);
  auto& c = st.tasks[2];
  CHECK_EQ(c.status, task_status::skipped);
  CHECK_EQ(c.error, "again");
  CHECK(c.attempts.empty());
  CHECK_EQ(st.violations.size(), 3u);
  CHECK(any_contains(st.violations, "task '03_c': 2 terminal events"));
  CHECK(any_contains(st.violations, "unknown task '99_x'"));
  CHECK(any_contains(st.violations, "seq 15 where 14 was expected"));
}

TEST_CASE(
    "replay: a failed attempt keeps its exit code and requeue clears it") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  script s;
  s.add(1, "run.created")
      .add(2, "task.started", "02_b", {}, R"({"attempt":1})")
      .add(3, "task.failed", "02_b", "exit 2", R"({"attempt":1,"exitCode":2})");
  s.write(path);
  auto st = replay_log(path, three_tasks());
  CHECK(st.seq_contiguous);
  CHECK(st.violations.empty());
  CHECK_EQ(st.status, run_status::queued);
  CHECK_EQ(st.tasks[1].status, task_status::failed);
  CHECK_EQ(st.tasks[1].exit_code, 2);
  CHECK_EQ(st.tasks[1].error, "exit 2");
  s.add(4, "task.requeued", "02_b");
  s.write(path);
  st = replay_log(path, three_tasks());
  CHECK_EQ(st.tasks[1].status, task_status::queued);
  CHECK_FALSE(st.tasks[1].has_exit_code);
  CHECK(st.tasks[1].error.empty());
  CHECK(st.tasks[1].started_at.empty());
  CHECK_EQ(st.tasks[1].attempts.size(), 1u);
}

TEST_CASE("replay: a torn tail is ignored and reported") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  script s;
  s.add(1, "run.created").add(2, "task.started", "01_a");
  auto torn = s.text + R"({"time":"x","type":"task.compl)";
  std::ofstream{path, std::ios::binary} << torn;
  auto st = replay_log(path, three_tasks());
  CHECK(st.torn_tail);
  CHECK_EQ(st.events, 2u);
  CHECK_EQ(st.tasks[0].status, task_status::running);
  std::vector<uint64_t> seen;
  auto rep = for_each_event(
      path, [&](const event_view& ev) { seen.push_back(ev.seq); });
  CHECK(rep.torn_tail);
  CHECK_EQ(rep.torn_line, 3u);
  CHECK_EQ(rep.events, 2u);
  CHECK_EQ(rep.last_seq, 2u);
  CHECK_THROWS_AS(for_each_event(
                      path, [](const event_view&) {}, read_options{0, false}),
                  input_error);
}

TEST_CASE("replay: for_each_event exposes fields and honours since_seq") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  script s;
  s.add(1, "run.created", {}, {}, R"({"team":"x"})")
      .add(2, "task.failed", "01_a", "line\nbreak \"q\"", R"({"exitCode":1})")
      .add(3, "run.failed", {}, "failed");
  s.write(path);
  std::vector<std::string> got;
  auto rep = for_each_event(
      path,
      [&](const event_view& ev) {
        got.push_back(std::string{ev.type});
        if (ev.seq == 2) {
          CHECK_EQ(ev.time, ts(2));
          CHECK_EQ(ev.run_id, "team_1");
          CHECK_EQ(ev.task_id, "01_a");
          CHECK_EQ(ev.message, "line\nbreak \"q\"");
          CHECK_EQ(ev.data_raw, R"({"exitCode":1})");
          CHECK_EQ(ev.line, 2u);
        }
      },
      read_options{1, true});
  CHECK_EQ(got, std::vector<std::string>{"task.failed", "run.failed"});
  CHECK_EQ(rep.events, 2u);
  CHECK_EQ(rep.last_seq, 3u);
}

TEST_CASE("replay: a missing log is not_found naming the file") {
  test::temp_dir tmp;
  try {
    replay_log(tmp.path / "missing-events.jsonl", {});
    FAIL("no exception");
  } catch (const input_error& e) {
    CHECK_EQ(e.code(), errc::not_found);
    CHECK(std::string{e.what()}.find("missing-events.jsonl")
          != std::string::npos);
  }
}

TEST_CASE("replay: exit codes are read from any data layout") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  script s;
  s.add(1, "task.started", "01_a")
      .add(2, "task.completed", "01_a", {}, R"({"attempt":1, "exitCode": 7})")
      .add(3, "task.started", "02_b")
      .add(4, "task.failed", "02_b", "x",
           R"({"detail":{"exitCode":1},"exitCode":-2})")
      .add(5, "task.started", "03_c")
      .add(6, "task.failed", "03_c", "y", R"({"note":"\"exitCode\":5"})");
  s.write(path);
  auto st = replay_log(path, three_tasks());
  CHECK(st.tasks[0].has_exit_code);
  CHECK_EQ(st.tasks[0].exit_code, 7);
  CHECK(st.tasks[1].has_exit_code);
  CHECK_EQ(st.tasks[1].exit_code, -2);
  CHECK_FALSE(st.tasks[2].has_exit_code);
}

TEST_CASE("replay: a cancel or expiry intent holds until run.running "
          "withdraws it") {
  test::temp_dir tmp;
  auto log = tmp.path / "events.jsonl";
  auto plan = three_tasks();
  script s;
  s.add(1, "run.created").add(2, "run.running", {}, "go");
  s.add(3, "task.started", "01_a", {}, R"({"attempt":1})");
  s.write(log);
  CHECK_FALSE(replay_log(log, plan).stop.requested());
  s.add(4, "crew.run.cancel_requested", {}, "Run cancelled by user request.");
  s.add(5, "task.cancelled", "03_c", "Run cancelled by user request.");
  s.write(log);
  auto rs = replay_log(log, plan);
  CHECK(rs.stop.kind == stop_kind::cancel);
  CHECK_EQ(rs.stop.reason, "Run cancelled by user request.");
  CHECK_EQ(rs.stop.seq, 4u);
  CHECK(rs.status == run_status::running); // the stop is not finished yet
  s.add(6, "crew.run.resumed").add(7, "task.cancelled", "01_a", "x");
  s.add(8, "run.cancelled", {}, "x");
  s.write(log);
  CHECK_EQ(replay_log(log, plan).stop.seq, 4u); // recovery keeps it
  s.add(9, "task.requeued", "01_a").add(10, "run.running", {}, "Resuming.");
  s.write(log);
  CHECK_FALSE(replay_log(log, plan).stop.requested()); // a resume withdraws it
  s.add(11, "crew.run.expired", {}, "Run exceeded limits.maxRunMinutes (1 min).");
  s.write(log);
  rs = replay_log(log, plan);
  CHECK(rs.stop.kind == stop_kind::expire);
  CHECK_EQ(rs.stop.seq, 11u);
}

// Review F1: `"data":nul` made read_raw convert a simdjson_result<bool> to
// bool, which threw simdjson_error out of every reader of the log.
TEST_CASE("replay: an invalid literal is an unparsable event, not a "
          "simdjson exception") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  script s;
  s.add(1, "run.created");
  auto bad = std::string{R"({"time":")"} + ts(2)
             + R"(","type":"task.progress","runId":"team_1","data":nul,)"
               R"("metadata":{"seq":2}})"
             + "\n";
  auto bad_meta = std::string{R"({"time":")"} + ts(2)
                  + R"(","type":"task.progress","runId":"team_1",)"
                    R"("metadata":{"seq":2,"x":nope}})"
                  + "\n";
  for (const auto& line : {bad, bad_meta}) {
    // in the middle: corruption naming file and line
    std::ofstream{path, std::ios::binary | std::ios::trunc}
      << s.text << line << s.text;
    CHECK_THROWS_WITH_AS(replay_log(path, three_tasks()),
                         doctest::Contains("events.jsonl:2: unparsable event"),
                         input_error);
    // last: a torn tail, ignored by readers and cut by the writer
    std::ofstream{path, std::ios::binary | std::ios::trunc} << s.text << line;
    auto st = replay_log(path, three_tasks());
    CHECK(st.torn_tail);
    CHECK_EQ(st.events, 1u);
    auto w = event_log_writer::open(path);
    CHECK(w.repair().repaired);
    CHECK_EQ(w.last_seq(), 1u);
  }
}

// Review F4 (replay.cpp): event time + delayMs overflowed int64.
TEST_CASE("replay: a huge retry delay saturates the due time") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  script s;
  s.add(1, "task.started", "01_a")
      .add(2, "crew.task.retry_attempt", "01_a", "boom",
           R"({"attempt":1,"delayMs":9223372036854775807})");
  s.write(path);
  auto st = replay_log(path, three_tasks());
  CHECK_EQ(st.tasks[0].retry_due_ms, INT64_MAX);
}

// Found by fuzz/events_fuzz.cpp: simdjson accepts this line (the document
// ends inside the object), but its `data` does not parse. read_worker looked
// up startTime on the document that the failed pid lookup had abandoned, and
// simdjson then reads through a null parser pointer (UBSan).
TEST_CASE("replay: a task.worker event with malformed data keeps what it can") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  script s;
  s.add(1, "task.started", "01_a");
  for (auto data : {R"({{}})", R"({"pid":12,{}})", R"({"pid":,"startTime":5})"}) {
    CAPTURE(data);
    std::ofstream{path, std::ios::binary | std::ios::trunc}
      << s.text << R"({"type":"task.worker","taskId":"01_a","data":)" << data
      << "\n";
    auto st = replay_log(path, three_tasks());
    CHECK_EQ(st.tasks[0].status, task_status::running);
    CHECK_EQ(st.tasks[0].worker_start, 0u);
  }
  s.add(2, "task.worker", "01_a", {}, R"({"attempt":1,"pid":12,"startTime":5})");
  s.write(path);
  auto st = replay_log(path, three_tasks());
  CHECK_EQ(st.tasks[0].worker_pid, 12);
  CHECK_EQ(st.tasks[0].worker_start, 5u);
}
