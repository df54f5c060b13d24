#include "actors/notification_router.hpp"

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/make_message.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.hpp"

using namespace crew;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct router_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  caf::scoped_actor self;
  test::temp_dir dir{"crew-notify-router"};

  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    cfg.add_message_types<caf::id_block::crew>();
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.console", caf::atom("none"));
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    return cfg;
  }

  router_fixture()
      : sys(configure(cfg)),
        sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())),
        self(sys, true) {
  }

  notification_router_actor spawn(notification_router_options opts) {
    opts.to_stderr = false;
    auto h = sys.spawn(notification_router, std::move(opts));
    self->send(h, caf::subscribe_atom_v, caf::actor_cast<caf::actor>(self));
    sched.run();
    return h;
  }

  void send(const notification_router_actor& h, notification n) {
    self->send(h, notify_atom_v, std::move(n));
    sched.run();
  }

  /// The notifications delivered to `self` so far.
  std::vector<notification> delivered() {
    std::vector<notification> out;
    bool more = true;
    while (more)
      self->receive([&](notify_atom, const notification& n) { out.push_back(n); },
                    caf::after(0ms) >> [&] { more = false; });
    return out;
  }

  /// Every JSONL record in the sink directory.
  std::vector<nlohmann::json> sink_lines() {
    std::vector<nlohmann::json> out;
    if (!fs::exists(dir.path / "sink"))
      return out;
    for (auto& e : fs::directory_iterator(dir.path / "sink")) {
      std::istringstream in{test::slurp(e.path())};
      for (std::string line; std::getline(in, line);)
        out.push_back(nlohmann::json::parse(line));
    }
    return out;
  }

  void stop(const notification_router_actor& h) {
    self->send_exit(h, caf::exit_reason::user_shutdown);
    sched.run();
  }
};

notification make(std::string title, severity sev) {
  notification n;
  n.source = "test";
  n.run_id = "run1";
  n.title = std::move(title);
  n.body = "body of " + n.title;
  n.sev = sev;
  return n;
}

} // namespace

TEST_CASE_FIXTURE(router_fixture,
                  "notification_router: sinks everything, delivers what passes") {
  notification_router_options opts;
  opts.sink_dir = (dir.path / "sink").string();
  auto h = spawn(opts);
  send(h, make("low", severity::info));
  send(h, make("Task t1 heartbeat dead", severity::warning));
  send(h, make("Task t1 heartbeat dead", severity::warning)); // duplicate
  auto secret = make("leak", severity::error);
  secret.body = "token=abc123";
  send(h, secret);
  auto got = delivered();
  REQUIRE(got.size() == 2);
  CHECK(got[0].title == "Task t1 heartbeat dead");
  CHECK(got[0].id == "test:run1:Task t1 heartbeat dead"); // stamped
  CHECK(got[0].timestamp != std::chrono::system_clock::time_point{});
  CHECK(got[1].title == "leak");
  auto lines = sink_lines();
  REQUIRE(lines.size() == 4); // filtered and duplicate ones too
  CHECK(lines[0]["severity"] == "info");
  CHECK(lines[0]["title"] == "low");
  CHECK(lines[3]["body"] == "token=***");
  stop(h);
}

TEST_CASE_FIXTURE(router_fixture,
                  "notification_router: no sink without a sink dir") {
  auto h = spawn({});
  send(h, make("x", severity::error));
  CHECK(delivered().size() == 1);
  CHECK(sink_lines().empty());
  self->send(h, caf::unsubscribe_atom_v, caf::actor_cast<caf::actor>(self));
  sched.run();
  send(h, make("y", severity::error));
  CHECK(delivered().empty());
  stop(h);
}

TEST_CASE_FIXTURE(router_fixture,
                  "notification_router: a timer flushes the batch") {
  notification_router_options opts;
  opts.config.batch_window_ms = 5000;
  auto h = spawn(opts);
  send(h, make("a", severity::warning));
  send(h, make("b", severity::critical));
  CHECK(delivered().empty());
  sched.advance_time(4s);
  sched.run();
  CHECK(delivered().empty());
  sched.advance_time(1s);
  sched.run();
  auto got = delivered();
  REQUIRE(got.size() == 1);
  CHECK(got[0].title == "2 crew notifications");
  CHECK(got[0].sev == severity::critical);
  CHECK(got[0].source == "batch");
  // A later single notification comes through unchanged.
  send(h, make("c", severity::error));
  sched.advance_time(5s);
  sched.run();
  got = delivered();
  REQUIRE(got.size() == 1);
  CHECK(got[0].title == "c");
  stop(h);
}

TEST_CASE_FIXTURE(router_fixture,
                  "notification_router: raises one deadletter-rate alert") {
  notification_router_options opts;
  opts.config.deadletter_alert_per_hour = 2;
  opts.sink_dir = (dir.path / "sink").string();
  auto h = spawn(opts);
  for (int i = 0; i < 5; ++i) {
    self->send(h, deadletter_atom_v,
               deadletter_notice{"run1", "t" + std::to_string(i), "max-retries"});
    sched.run();
  }
  auto got = delivered();
  REQUIRE(got.size() == 1);
  CHECK(got[0].sev == severity::error);
  CHECK(got[0].title == "More than 2 deadletters within an hour");
  CHECK(got[0].body.find("t2") != std::string::npos);
  auto lines = sink_lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["source"] == "deadletter");
  stop(h);
}

TEST_CASE_FIXTURE(router_fixture,
                  "notification_router: its messages serialize (remote use)") {
  auto n = make("t", severity::critical);
  n.id = "id";
  n.timestamp = std::chrono::system_clock::time_point{} + 1234567ms;
  deadletter_notice dl{"run1", "t1", "heartbeat-dead"};
  auto msg = caf::make_message(notify_atom_v, n, deadletter_atom_v, dl);
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE_FALSE(sink(msg));
  caf::message back;
  caf::binary_deserializer source{sys, buf};
  REQUIRE_FALSE(source(back));
  CHECK(caf::deep_to_string(back) == caf::deep_to_string(msg));
  REQUIRE(back.match_elements<notify_atom, notification, deadletter_atom,
                              deadletter_notice>());
  CHECK(back.get_as<notification>(1).timestamp == n.timestamp);
  CHECK(back.get_as<notification>(1).sev == severity::critical);
  CHECK(back.get_as<deadletter_notice>(3).reason == "heartbeat-dead");
}
