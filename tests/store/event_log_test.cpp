#include "store/event_log.hpp"

#include <fstream>

#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "store/atomic_file.hpp"
#include "store/replay.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
using namespace std::chrono;
namespace fs = std::filesystem;

namespace {

system_clock::time_point t0() {
  return sys_days{year{2026} / 11 / 26} + hours{1} + minutes{15} + seconds{45}
         + milliseconds{123};
}

std::string line(uint64_t seq, std::string_view type,
                 std::string_view task = {}) {
  std::string out;
  append_event_line(out, event_fields{type, "team_1", task, {}, {}, seq, t0()});
  return out;
}

void write_raw(const fs::path& p, std::string_view content) {
  std::ofstream out{p, std::ios::binary | std::ios::trunc};
  out << content;
}

} // namespace

TEST_CASE("event_log: formats a line in pi-crew's key order") {
  std::string out;
  append_event_line(
      out, event_fields{"task.completed", "team_1", "01_a", "done \"ok\"",
                        R"({"attempt":1,"exitCode":0})", 7, t0()});
  CHECK_EQ(out, R"({"time":"2026-11-26T01:15:45.123Z","type":"task.completed",)"
                R"("runId":"team_1","taskId":"01_a","message":"done \"ok\"",)"
                R"("data":{"attempt":1,"exitCode":0},)"
                R"("metadata":{"seq":7,"provenance":"team_runner"}})"
                "\n");
  out.clear();
  append_event_line(out,
                    event_fields{"run.created", "team_1", {}, {}, {}, 1, t0()});
  CHECK_EQ(out, R"({"time":"2026-11-26T01:15:45.123Z","type":"run.created",)"
                R"("runId":"team_1",)"
                R"("metadata":{"seq":1,"provenance":"team_runner"}})"
                "\n");
}

TEST_CASE("event_log: worker bytes that are not UTF-8 keep the log readable") {
  // M7: a failing worker's stderr tail, cut inside a € or in Latin-1, went
  // into a message verbatim and simdjson refused the line for good.
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  std::string cut_euro = "\x82\xAC\xE2\x82\xAC tail \xE2\x82";
  std::string out;
  append_event_line(out, event_fields{"task.failed", "team_1", "01_a",
                                      "exit 1: " + cut_euro,
                                      "{\"note\":\"caf\xE9\"}", 1, t0()});
  append_event_line(out, event_fields{"run.failed", "team_1", {}, {}, {}, 2, t0()});
  CHECK_NE(out.find("\"message\":\"exit 1: \xEF\xBF\xBD\xEF\xBF\xBD\xE2\x82\xAC tail "
                    "\xEF\xBF\xBD\""),
           std::string::npos);
  CHECK_NE(out.find("\"data\":{\"note\":\"caf\xEF\xBF\xBD\"}"),
           std::string::npos);
  write_raw(path, out);
  std::vector<std::string> messages;
  auto report = for_each_event(path, [&](const event_view& ev) {
    messages.emplace_back(ev.message);
  });
  CHECK_EQ(report.events, 2u);
  REQUIRE_EQ(messages.size(), 2u);
  CHECK_EQ(messages[0], "exit 1: \xEF\xBF\xBD\xEF\xBF\xBD\xE2\x82\xAC tail \xEF\xBF\xBD");
  auto w = event_log_writer::open(path);
  CHECK_FALSE(w.repair().repaired);
  CHECK_EQ(w.last_seq(), 2u);
}

TEST_CASE("event_log: fsync policy names round trip") {
  for (auto p :
       {fsync_policy::none, fsync_policy::batch, fsync_policy::always}) {
    fsync_policy q{};
    REQUIRE(from_string(to_string(p), q));
    CHECK_EQ(p, q);
  }
  fsync_policy q{};
  CHECK_FALSE(from_string("sometimes", q));
}

TEST_CASE("event_log: open, append and reopen restores last_seq") {
  test::temp_dir tmp;
  auto path = tmp.path / "state" / "runs" / "team_1" / "events.jsonl";
  {
    auto w = event_log_writer::open(path);
    CHECK_EQ(w.last_seq(), 0u);
    CHECK_EQ(w.bytes(), 0u);
    CHECK_FALSE(w.repair().repaired);
    std::string batch = line(1, "run.created") + line(2, "run.running");
    w.append(batch, 2);
    CHECK_EQ(w.last_seq(), 2u);
    w.append(line(3, "task.started", "01_a"), 3);
    w.sync();
    CHECK_EQ(w.bytes(), fs::file_size(path));
    auto moved = std::move(w);
    moved.append(line(4, "task.completed", "01_a"), 4);
  }
  auto w = event_log_writer::open(path);
  CHECK_EQ(w.last_seq(), 4u);
  CHECK_FALSE(w.repair().repaired);
  CHECK_EQ(w.bytes(), fs::file_size(path));
  uint64_t n = 0;
  for_each_event(path, [&](const event_view& ev) { CHECK_EQ(ev.seq, ++n); });
  CHECK_EQ(n, 4u);
}

TEST_CASE("event_log: repairs a torn final line and reports it") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  auto good = line(1, "run.created") + line(2, "run.running");
  auto partial = line(3, "task.started", "01_a");
  partial.resize(partial.size() / 2); // a write cut mid-line, no newline
  write_raw(path, good + partial);
  auto w = event_log_writer::open(path);
  CHECK(w.repair().repaired);
  CHECK_EQ(w.repair().truncated_bytes, partial.size());
  CHECK_EQ(w.repair().line, 3u);
  CHECK(w.repair().reason.find("newline") != std::string::npos);
  CHECK_EQ(w.last_seq(), 2u);
  CHECK_EQ(fs::file_size(path), good.size());
  w.append(line(3, "task.started", "01_a"), 3);
  auto w2 = event_log_writer::open(path);
  CHECK_FALSE(w2.repair().repaired);
  CHECK_EQ(w2.last_seq(), 3u);
}

TEST_CASE("event_log: repairs a complete but unparsable final line") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  auto good = line(1, "run.created");
  std::string bad = "{\"time\":\"x\",\"type\":\"run.running\",\"runId\":}\n";
  write_raw(path, good + bad + "\n");
  auto w = event_log_writer::open(path);
  CHECK(w.repair().repaired);
  CHECK_EQ(w.repair().line, 2u);
  CHECK_EQ(w.repair().truncated_bytes, bad.size() + 1);
  CHECK(w.repair().reason.find("unparsable") != std::string::npos);
  CHECK_EQ(w.last_seq(), 1u);
  CHECK_EQ(read_file(path), good);
}

TEST_CASE("event_log: a corrupt middle line is an error naming file and line") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  write_raw(path, line(1, "run.created") + line(2, "run.running")
                      + "{not json\n" + line(4, "run.completed"));
  auto check = [&](auto&& fn) {
    try {
      fn();
      FAIL("no exception");
    } catch (const input_error& e) {
      CHECK_EQ(e.code(), errc::corrupt_log);
      std::string what = e.what();
      CHECK(what.find("events.jsonl:3:") != std::string::npos);
      CHECK(what.find("unparsable event") != std::string::npos);
    }
  };
  check([&] { event_log_writer::open(path); });
  check([&] { for_each_event(path, [](const event_view&) {}); });
  // nothing was cut
  CHECK(read_file(path).ends_with("\n"));
}

TEST_CASE("event_log: a garbled line followed by blank lines is a torn tail") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  auto good = line(1, "run.created");
  write_raw(path, good + "\n" + "garbage\n\n");
  auto w = event_log_writer::open(path);
  CHECK(w.repair().repaired);
  CHECK_EQ(w.repair().line, 3u);
  CHECK_EQ(read_file(path), good + "\n");
}

TEST_CASE("event_log: trailing garbage after a middle event is corruption") {
  test::temp_dir tmp;
  auto path = tmp.path / "events.jsonl";
  auto second = line(2, "run.running");
  second.insert(second.size() - 1, " x");
  write_raw(path, line(1, "run.created") + second + line(3, "run.completed"));
  CHECK_THROWS_WITH_AS(event_log_writer::open(path),
                       doctest::Contains("events.jsonl:2:"), input_error);
}

TEST_CASE("event_log: a failed append throws io_error naming the file") {
  if (!fs::exists("/dev/full"))
    return;
  auto w = event_log_writer::open("/dev/full");
  try {
    w.append(line(1, "run.created"), 1);
    FAIL("no exception");
  } catch (const io_error& e) {
    CHECK(std::string{e.what()}.find("/dev/full") != std::string::npos);
  }
  CHECK_EQ(w.last_seq(), 0u);
  CHECK_EQ(w.bytes(), 0u);
}
