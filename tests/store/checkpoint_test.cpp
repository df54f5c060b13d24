#include "store/checkpoint.hpp"

#include <fstream>

#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "store/atomic_file.hpp"
#include "store/event_log.hpp"
#include "store/replay.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
using namespace std::chrono;
namespace fs = std::filesystem;

namespace {

std::vector<planned_task> five_tasks() {
  std::vector<planned_task> plan;
  for (auto id : {"01_a", "02_b", "03_c", "04_d", "05_e"}) {
    auto& p = plan.emplace_back();
    p.id = id;
    p.step_id = std::string{id}.substr(3);
    p.role = "executor";
    p.agent = "executor";
    p.title = "step " + p.step_id;
    p.task = "do {goal}";
  }
  plan[1].depends_on = {"a"};
  plan[1].deps = {0};
  plan[2].depends_on = {"a", "b"};
  plan[2].deps = {0, 1};
  return plan;
}

/// A log exercising every rule of the replay: retries with a backoff, a
/// worker pid, completion with an exit code, failure, skip, cancel, requeue
/// of an attempt cut off by a crash, and an attempt still running.
std::string sample_log() {
  std::string out;
  uint64_t seq = 0;
  auto t = sys_days{year{2026} / 11 / 26} + hours{3};
  auto ev = [&](std::string_view type, std::string_view task = {},
                std::string_view message = {}, std::string_view data = {}) {
    ++seq;
    append_event_line(out, event_fields{type, "r1", task, message, data, seq,
                                        t + milliseconds{seq * 7}});
  };
  ev("run.created");
  ev("run.running", {}, "Executing team workflow.");
  ev("task.started", "01_a", {}, R"({"attempt":1})");
  ev("task.worker", "01_a", {}, R"({"attempt":1,"pid":4242,"startTime":99})");
  ev("crew.task.retry_attempt", "01_a", "exit 1", R"({"attempt":1,"delayMs":250})");
  ev("task.started", "01_a", {}, R"({"attempt":2})");
  ev("task.completed", "01_a", {}, R"({"attempt":2,"exitCode":0})");
  ev("task.started", "02_b", {}, R"({"attempt":1})");
  ev("task.failed", "02_b", "boom", R"({"attempt":1,"exitCode":3})");
  ev("task.skipped", "03_c", "dependency 02_b failed");
  ev("task.started", "04_d", {}, R"({"attempt":1})");
  ev("task.worker", "04_d", {}, R"({"attempt":1,"pid":777,"startTime":5})");
  ev("task.requeued", "04_d", "Requeued by recovery.", R"({"previousStatus":"running"})");
  ev("task.started", "04_d", {}, R"({"attempt":2})");
  ev("task.cancelled", "04_d", "cancelled by user");
  ev("task.started", "05_e", {}, R"({"attempt":1})");
  ev("crew.task.retry_attempt", "05_e", "rate limit", R"({"attempt":1,"delayMs":900})");
  ev("task.started", "05_e", {}, R"({"attempt":2})");
  ev("task.worker", "05_e", {}, R"({"attempt":2,"pid":31337,"startTime":12})");
  return out;
}

void write_text(const fs::path& p, std::string_view text) {
  std::ofstream{p, std::ios::binary | std::ios::trunc} << text;
}

void check_same(const task_state& x, const task_state& y, std::string_view id) {
  INFO("task ", id);
  CHECK(x.status == y.status);
  CHECK_EQ(x.started_at, y.started_at);
  CHECK_EQ(x.finished_at, y.finished_at);
  CHECK_EQ(x.error, y.error);
  CHECK_EQ(x.has_exit_code, y.has_exit_code);
  if (x.has_exit_code && y.has_exit_code)
    CHECK_EQ(x.exit_code, y.exit_code);
  CHECK_EQ(x.worker_pid, y.worker_pid);
  CHECK_EQ(x.worker_start, y.worker_start);
  CHECK_EQ(x.retry_due_ms, y.retry_due_ms);
  REQUIRE_EQ(x.attempts.size(), y.attempts.size());
  for (size_t i = 0; i < x.attempts.size(); ++i) {
    CHECK_EQ(x.attempts[i].started_at, y.attempts[i].started_at);
    CHECK_EQ(x.attempts[i].ended_at, y.attempts[i].ended_at);
    CHECK_EQ(x.attempts[i].error, y.attempts[i].error);
  }
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    out.push_back(text.substr(pos, nl + 1 - pos));
    pos = nl + 1;
  }
  return out;
}

} // namespace

TEST_CASE("checkpoint: task states survive make_checkpoint and the binary file") {
  test::temp_dir tmp;
  auto plan = five_tasks();
  auto log = tmp.path / "events.jsonl";
  write_text(log, sample_log());
  auto full = replay_log(log, plan);
  auto ck = make_checkpoint(full.tasks);
  ck.seq = full.last_seq;
  ck.status = full.status;
  ck.summary = full.summary;
  write_file_atomic(tmp.path / "checkpoint.bin", checkpoint_bin(ck));
  auto back = read_checkpoint(tmp.path / "checkpoint.bin");
  REQUIRE(back);
  CHECK_EQ(back->seq, full.last_seq);
  CHECK(back->status == run_status::running);
  CHECK_EQ(back->summary, "Executing team workflow.");
  REQUIRE_EQ(back->tasks.size(), plan.size());
  for (uint32_t i = 0; i < plan.size(); ++i)
    check_same(checkpoint_task_state(*back, i), full.tasks[i], plan[i].id);
  // the running attempt of 05_e keeps its worker, 01_a its history
  CHECK_EQ(back->tasks[4].worker_pid, 31337);
  CHECK_EQ(checkpoint_task_state(*back, 0).attempts.size(), 2u);
}

TEST_CASE("checkpoint: a checkpoint at any seq plus the tail equals a full "
          "replay") {
  test::temp_dir tmp;
  auto plan = five_tasks();
  auto text = sample_log();
  auto lines = lines_of(text);
  auto log = tmp.path / "events.jsonl";
  write_text(log, text);
  auto full = replay_log(log, plan);
  for (size_t k = 1; k <= lines.size(); ++k) {
    INFO("checkpoint after event ", k);
    std::string prefix;
    for (size_t i = 0; i < k; ++i)
      prefix += lines[i];
    auto prefix_log = tmp.path / "prefix.jsonl";
    write_text(prefix_log, prefix);
    auto before = replay_log(prefix_log, plan);
    auto ck = make_checkpoint(before.tasks);
    ck.seq = before.last_seq;
    ck.status = before.status;
    ck.summary = before.summary;
    auto end = find_seq_end(log, ck.seq);
    REQUIRE(end);
    CHECK_EQ(*end, prefix.size());
    auto rep = replay_tail(log, *end, plan, ck);
    CHECK_EQ(rep.events, lines.size() - k);
    CHECK_EQ(rep.valid_end, text.size());
    CHECK(rep.violations.empty());
    CHECK_EQ(ck.seq, full.last_seq);
    CHECK(ck.status == full.status);
    for (uint32_t i = 0; i < plan.size(); ++i)
      check_same(checkpoint_task_state(ck, i), full.tasks[i], plan[i].id);
  }
}

TEST_CASE("checkpoint: the tail replay reports a second terminal event and a "
          "torn final line") {
  test::temp_dir tmp;
  auto plan = five_tasks();
  auto text = sample_log();
  auto log = tmp.path / "events.jsonl";
  std::string extra;
  append_event_line(extra, event_fields{"task.completed", "r1", "02_b", {}, {},
                                        20, system_clock::now()});
  write_text(log, text + extra + "{\"time\":\"2026");
  auto prefix = lines_of(text);
  // checkpoint after event 9 (02_b failed)
  std::string head;
  for (size_t i = 0; i < 9; ++i)
    head += prefix[i];
  write_text(tmp.path / "head.jsonl", head);
  auto before = replay_log(tmp.path / "head.jsonl", plan);
  auto ck = make_checkpoint(before.tasks);
  ck.seq = 9;
  auto end = find_seq_end(log, 9);
  REQUIRE(end);
  auto rep = replay_tail(log, *end, plan, ck);
  CHECK(rep.torn_tail);
  CHECK_EQ(rep.valid_end, text.size() + extra.size());
  REQUIRE_EQ(rep.violations.size(), 1u);
  CHECK(rep.violations[0].find("02_b") != std::string::npos);
}

TEST_CASE("checkpoint: find_seq_end locates every event and nothing else") {
  test::temp_dir tmp;
  auto text = sample_log();
  auto lines = lines_of(text);
  auto log = tmp.path / "events.jsonl";
  write_text(log, text + "{\"time\":\"torn");
  uint64_t end = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    end += lines[i].size();
    auto found = find_seq_end(log, i + 1);
    REQUIRE_MESSAGE(found, "seq ", i + 1);
    CHECK_EQ(*found, end);
  }
  CHECK_FALSE(find_seq_end(log, 0));
  CHECK_FALSE(find_seq_end(log, lines.size() + 1));
  CHECK_FALSE(find_seq_end(tmp.path / "missing.jsonl", 1));
}

TEST_CASE("checkpoint: plan.bin mirrors the plan and refuses stale or damaged "
          "files") {
  test::temp_dir tmp;
  auto plan = five_tasks();
  auto path = tmp.path / "plan.bin";
  auto bytes = plan_bin(plan, 1234);
  write_file_atomic(path, bytes);
  auto back = read_plan_bin(path, 1234);
  REQUIRE(back);
  REQUIRE_EQ(back->size(), plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    CHECK_EQ((*back)[i].id, plan[i].id);
    CHECK_EQ((*back)[i].step_id, plan[i].step_id);
    CHECK_EQ((*back)[i].title, plan[i].title);
    CHECK_EQ((*back)[i].task, plan[i].task);
    CHECK_EQ((*back)[i].depends_on, plan[i].depends_on);
    CHECK_EQ((*back)[i].deps, plan[i].deps);
  }
  CHECK_FALSE(read_plan_bin(path, 1235)); // plan.json changed
  CHECK_FALSE(read_plan_bin(tmp.path / "missing.bin", 1234));
  write_file_atomic(path, bytes.substr(0, bytes.size() - 9)); // truncated
  CHECK_FALSE(read_plan_bin(path, 1234));
  write_file_atomic(path, "CREWPLN\x02" + bytes.substr(8)); // other version
  CHECK_FALSE(read_plan_bin(path, 1234));
}

TEST_CASE("checkpoint: plan.bin resolves task ids without building the plan") {
  test::temp_dir tmp;
  auto plan = five_tasks();
  auto path = tmp.path / "plan.bin";
  write_file_atomic(path, plan_bin(plan, 10));
  std::unordered_map<std::string, uint32_t> ids{
    {"04_d", UINT32_MAX}, {"01_a", UINT32_MAX}, {"nope", UINT32_MAX}};
  REQUIRE(resolve_plan_bin_ids(path, 10, ids));
  CHECK_EQ(ids["01_a"], 0u);
  CHECK_EQ(ids["04_d"], 3u);
  CHECK_EQ(ids["nope"], UINT32_MAX);
  CHECK_FALSE(resolve_plan_bin_ids(path, 11, ids));
}

TEST_CASE("checkpoint: a damaged checkpoint file is a cache miss") {
  test::temp_dir tmp;
  auto plan = five_tasks();
  auto log = tmp.path / "events.jsonl";
  write_text(log, sample_log());
  auto ck = make_checkpoint(replay_log(log, plan).tasks);
  auto bytes = checkpoint_bin(ck);
  auto path = tmp.path / "checkpoint.bin";
  for (size_t cut : {size_t{0}, size_t{7}, size_t{30}, bytes.size() / 2,
                     bytes.size() - 1}) {
    write_file_atomic(path, bytes.substr(0, cut));
    CHECK_FALSE(read_checkpoint(path));
  }
  auto bad_status = bytes;
  bad_status[20] = 42; // the run status byte
  write_file_atomic(path, bad_status);
  CHECK_FALSE(read_checkpoint(path));
}

TEST_CASE("checkpoint: a writer opened on a trusted prefix checks only the "
          "rest") {
  test::temp_dir tmp;
  auto text = sample_log();
  auto lines = lines_of(text);
  auto log = tmp.path / "events.jsonl";
  // garbage inside the trusted prefix is not read again; a torn tail after
  // it is still cut off
  auto damaged = text;
  damaged[lines[0].size()] = '#'; // line 2 loses its "{"
  write_text(log, damaged + "{\"torn");
  auto w = event_log_writer::open(log, log_position{text.size(), lines.size(),
                                                    lines.size()});
  CHECK_EQ(w.last_seq(), lines.size());
  CHECK(w.repair().repaired);
  CHECK_EQ(w.repair().line, lines.size() + 1);
  CHECK_EQ(fs::file_size(log), text.size());
  // without a trusted prefix the damage is reported with its line
  CHECK_THROWS_WITH_AS(event_log_writer::open(log),
                       doctest::Contains("events.jsonl:2:"), input_error);
}

TEST_CASE("checkpoint: a tail with adaptive.plan_injected reports a changed "
          "plan, the full replay adds the injected tasks once") {
  test::temp_dir tmp;
  auto plan = five_tasks();
  auto text = sample_log();
  auto log = tmp.path / "events.jsonl";
  auto n = lines_of(text).size();
  std::string extra;
  auto at = system_clock::now();
  append_event_line(
    extra,
    event_fields{"adaptive.plan_injected", "r1", {}, "Adaptive plan injected.",
                 R"({"phases":[],"tasks":[{"id":"adaptive-01-executor",)"
                 R"("stepId":"adaptive-1-1-executor","role":"executor",)"
                 R"("agent":"executor","title":"t","model":"","task":"do",)"
                 R"("dependsOn":["01_a"]}]})",
                 n + 1, at});
  append_event_line(extra, event_fields{"task.started", "r1", "adaptive-01-executor",
                                        {}, R"({"attempt":1})", n + 2, at});
  write_text(log, text + extra);

  auto before = replay_log(tmp.path / "events.jsonl", plan);
  CHECK(before.violations.empty());
  REQUIRE_EQ(before.added.size(), 1u);
  CHECK_EQ(before.added[0].id, "adaptive-01-executor");
  CHECK_EQ(before.added[0].depends_on, std::vector<std::string>{"01_a"});
  REQUIRE_EQ(before.tasks.size(), plan.size() + 1);
  CHECK(before.tasks.back().status == task_status::running);

  // plan.json rewritten with the task: nothing is added twice
  auto grown = plan;
  grown.push_back(before.added[0]);
  auto again = replay_log(log, grown);
  CHECK(again.added.empty());
  CHECK_EQ(again.tasks.size(), grown.size());
  CHECK(again.violations.empty());

  // a checkpoint from before the injection cannot describe the tail
  write_text(tmp.path / "head.jsonl", text);
  auto head = replay_log(tmp.path / "head.jsonl", plan);
  auto ck = make_checkpoint(head.tasks);
  ck.seq = head.last_seq;
  auto end = find_seq_end(log, ck.seq);
  REQUIRE(end);
  auto rep = replay_tail(log, *end, plan, ck);
  CHECK(rep.plan_changed);

  // an injection without tasks is a violation, not a crash
  std::string bad;
  append_event_line(bad, event_fields{"adaptive.plan_injected", "r1", {}, {},
                                      R"({"tasks":7})", n + 3, at});
  write_text(log, text + extra + bad);
  auto broken = replay_log(log, plan);
  REQUIRE_EQ(broken.violations.size(), 1u);
  CHECK(broken.violations[0].find("adaptive.plan_injected") != std::string::npos);
}

TEST_CASE("checkpoint: the stop intent survives the binary file") {
  test::temp_dir tmp;
  run_checkpoint ck;
  ck.seq = 12;
  ck.status = run_status::running;
  ck.stop = {stop_kind::expire, "Run exceeded limits.maxRunMinutes (1 min).", 9};
  ck.tasks.resize(2);
  write_file_atomic(tmp.path / "checkpoint.bin", checkpoint_bin(ck));
  auto back = read_checkpoint(tmp.path / "checkpoint.bin");
  REQUIRE(back);
  CHECK(back->stop.kind == stop_kind::expire);
  CHECK_EQ(back->stop.reason, ck.stop.reason);
  CHECK_EQ(back->stop.seq, 9u);
  ck.stop = {};
  write_file_atomic(tmp.path / "checkpoint.bin", checkpoint_bin(ck));
  back = read_checkpoint(tmp.path / "checkpoint.bin");
  REQUIRE(back);
  CHECK_FALSE(back->stop.requested());
}

// Review F4: checkpoint.bin comes from disk; a time of INT64_MAX ms
// overflowed the conversion to a time_point in iso_of.
TEST_CASE("checkpoint: out-of-range times in a checkpoint are clamped") {
  run_checkpoint ck;
  auto& t = ck.tasks.emplace_back();
  t.status = task_status::failed;
  t.attempts = 2;
  t.started_ms = INT64_MAX;
  t.finished_ms = INT64_MIN;
  ck.history.push_back({0, {attempt_checkpoint{INT64_MAX, INT64_MAX - 1, "x"}}});
  auto st = checkpoint_task_state(ck, 0);
  CHECK_EQ(st.started_at, "2262-04-11T23:47:16.854Z");
  CHECK_EQ(st.finished_at, "1677-09-21T00:12:43.146Z");
  REQUIRE_FALSE(st.attempts.empty());
  CHECK_EQ(st.attempts.front().started_at, "2262-04-11T23:47:16.854Z");
  CHECK_EQ(st.attempts.front().ended_at, "2262-04-11T23:47:16.854Z");
}
