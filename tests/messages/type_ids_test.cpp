#include "messages/type_ids.hpp"

#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/message.hpp>
#include <caf/make_message.hpp>

#include <doctest/doctest.h>

#include "messages/task.hpp"

using namespace crew;

namespace {

struct system_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;

  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    cfg.add_message_types<caf::id_block::crew>();
    cfg.set("logger.console", caf::atom("none"));
    return cfg;
  }

  system_fixture() : sys(configure(cfg)) {
    // nop
  }
};

/// Serializes `x` and reads it back into a default-constructed T.
template <class T>
T round_trip(caf::actor_system& sys, const T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  auto copy = x;
  auto err = sink(copy);
  REQUIRE_MESSAGE(!err, sys.render(err));
  CHECK_FALSE(buf.empty());
  T y{};
  caf::binary_deserializer source{sys, buf};
  err = source(y);
  REQUIRE_MESSAGE(!err, sys.render(err));
  return y;
}

/// Checks bare and wrapped-in-a-message round trips of `x`, which must not
/// print like a default-constructed T.
template <class T>
void check_round_trip(caf::actor_system& sys, const T& x) {
  auto text = caf::deep_to_string(x);
  INFO(text);
  CHECK_NE(text, caf::deep_to_string(T{}));
  CHECK_EQ(caf::deep_to_string(round_trip(sys, x)), text);
  auto msg = caf::make_message(x);
  auto back = round_trip(sys, msg);
  REQUIRE_EQ(back.size(), 1u);
  REQUIRE(back.template match_element<T>(0));
  CHECK_EQ(caf::deep_to_string(back.template get_as<T>(0)), text);
  CHECK_EQ(caf::deep_to_string(back), caf::deep_to_string(msg));
}

task_attempt sample_attempt() {
  task_attempt x;
  x.run_id = "team_20250101000000_0badcafe";
  x.task_id = "01_explore";
  x.index = 3;
  x.attempt = 2;
  x.backend = "command";
  x.command_line = "echo \"hi\" && exit 3";
  x.cwd = "/tmp/project";
  x.env = {"CREW_RUN_ID=r", "CREW_TASK_ID=t"};
  x.prompt = "line 1\nline 2 \xc3\xa9";
  x.prompt_path = "/a/prompts/t.md";
  x.result_path = "/a/results/t.txt";
  x.log_path = "/a/logs/t.log";
  x.timeout_ms = 123456789012ull;
  return x;
}

attempt_result sample_result() {
  attempt_result x;
  x.index = 4000000000u;
  x.attempt = 7;
  x.ok = true;
  x.exit_code = -1;
  x.signal = 9;
  x.error = "killed by signal 9";
  x.duration_us = 99;
  return x;
}

} // namespace

TEST_CASE_FIXTURE(system_fixture, "type_ids: task_attempt round-trips") {
  check_round_trip(sys, sample_attempt());
}

TEST_CASE_FIXTURE(system_fixture, "type_ids: sim_job and its vector round-trip") {
  check_round_trip(sys, sim_job{12, 3});
  check_round_trip(sys, std::vector<sim_job>{{1, 1}, {2, 5}, {4294967295u, 2}});
}

TEST_CASE_FIXTURE(system_fixture, "type_ids: attempt_started round-trips") {
  check_round_trip(sys, attempt_started{5, 2, -4242});
}

TEST_CASE_FIXTURE(system_fixture,
                  "type_ids: attempt_result and its vector round-trip") {
  check_round_trip(sys, sample_result());
  auto second = sample_result();
  second.ok = false;
  second.exit_code = 2;
  second.error.clear();
  check_round_trip(sys, std::vector<attempt_result>{sample_result(), second});
}

TEST_CASE_FIXTURE(system_fixture, "type_ids: run_progress round-trips") {
  run_progress x;
  x.run_id = "loadtest_20250101000000_0badcafe";
  x.status = "running";
  x.total = 10;
  x.queued = 1;
  x.running = 2;
  x.completed = 3;
  x.failed = 1;
  x.skipped = 2;
  x.cancelled = 1;
  x.events = 1ull << 40;
  x.durable_seq = (1ull << 40) - 5;
  x.finished = true;
  x.latency_p50_us = 12.5;
  x.latency_p99_us = 1e6 + 0.25;
  check_round_trip(sys, x);
}

TEST_CASE_FIXTURE(system_fixture,
                  "type_ids: a message with atoms and several types "
                  "round-trips") {
  auto msg = caf::make_message(result_atom_v,
                               std::vector<attempt_result>{sample_result()});
  auto back = round_trip(sys, msg);
  CHECK_EQ(caf::deep_to_string(back), caf::deep_to_string(msg));
  CHECK(back.match_elements<result_atom, std::vector<attempt_result>>());
  auto msg2 = caf::make_message(dispatch_atom_v, std::vector<sim_job>{{1, 2}},
                                attempt_started{1, 2, 3});
  CHECK_EQ(caf::deep_to_string(round_trip(sys, msg2)),
           caf::deep_to_string(msg2));
}

TEST_CASE_FIXTURE(system_fixture,
                  "type_ids: metric digests and statistics round-trip") {
  event_note n;
  n.kind = note_kind::task_retry;
  n.status = 3;
  n.task = 4000000000u;
  n.attempt = 2;
  n.value = 1ull << 41;
  n.tokens = 77;
  check_round_trip(sys, n);
  auto other = n;
  other.kind = note_kind::heartbeat_dead;
  check_round_trip(sys, std::vector<event_note>{n, other});
  bucketed b;
  b.counts = {1, 0, 5, 1ull << 35};
  b.sum = 12.75;
  check_round_trip(sys, b);
  scheduler_stats s;
  s.run_id = "team_20250101000000_0badcafe";
  s.queued = 9;
  s.running = 8;
  s.dispatch_latency_ms = b;
  check_round_trip(sys, s);
  commit_stats c;
  c.events = 123456;
  c.append_to_durable_ms = b;
  check_round_trip(sys, c);
}

TEST_CASE_FIXTURE(system_fixture, "type_ids: notifications round-trip") {
  notification x;
  x.id = "dead_r1_t1";
  x.source = "heartbeat-watcher";
  x.run_id = "r1";
  x.title = "Task t1 heartbeat dead";
  x.body = "No activity for 301000 ms.\nline two";
  x.sev = severity::critical;
  x.timestamp = std::chrono::system_clock::time_point{std::chrono::milliseconds{1795657245123}};
  check_round_trip(sys, x);
  check_round_trip(sys, deadletter_notice{"r1", "t1", "max-retries"});
}

TEST_CASE("type_ids: the block starts at first_custom_type_id and names are "
          "qualified") {
  CHECK_EQ(caf::type_id<task_attempt>::value, caf::first_custom_type_id);
  CHECK_EQ(std::string{caf::type_name<task_attempt>::value}, "crew::task_attempt");
  CHECK_EQ(std::string{caf::type_name<std::vector<sim_job>>::value},
           "std::vector<crew::sim_job>");
  CHECK_EQ(std::string{caf::type_name<run_progress>::value}, "crew::run_progress");
}
