#include "runtime/supervision/notifications.hpp"

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "store/clock.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
using namespace std::chrono;
namespace fs = std::filesystem;

namespace {

using steady = steady_clock::time_point;

const steady t0 = steady{} + hours{1000};
const system_clock::time_point wall0 = system_clock::time_point{} + hours{24 * 20000};

notification make(std::string title, severity sev = severity::warning,
                  std::string id = "") {
  notification n;
  n.id = std::move(id);
  n.source = "test";
  n.run_id = "run1";
  n.title = std::move(title);
  n.sev = sev;
  return n;
}

notifications_config config(uint64_t dedup_ms = 30000, uint64_t batch_ms = 0) {
  notifications_config c;
  c.dedup_window_ms = dedup_ms;
  c.batch_window_ms = batch_ms;
  return c;
}

system_clock::time_point utc(const char* iso) {
  system_clock::time_point t;
  REQUIRE(parse_iso_time(iso, t));
  return t;
}

} // namespace

TEST_CASE("notifications: severity names round-trip") {
  for (auto x : {severity::info, severity::warning, severity::error,
                 severity::critical}) {
    severity y = severity::info;
    CHECK(from_string(to_string(x), y));
    CHECK(y == x);
  }
  severity y;
  CHECK_FALSE(from_string("fatal", y));
}

TEST_CASE("notifications: dedup key is the id or source:run|global:title") {
  auto n = make("T");
  CHECK(dedup_key(n) == "test:run1:T");
  n.run_id.clear();
  CHECK(dedup_key(n) == "test:global:T");
  n.id = "dead_r_t";
  CHECK(dedup_key(n) == "dead_r_t");
}

TEST_CASE("notifications: the default filter drops info only") {
  notification_rules rules{config()};
  CHECK(rules.decide(make("a", severity::info), wall0, t0)
        == delivery::dropped_filtered);
  CHECK(rules.decide(make("b", severity::warning), wall0, t0)
        == delivery::deliver_now);
  CHECK(rules.decide(make("c", severity::error), wall0, t0)
        == delivery::deliver_now);
  CHECK(rules.decide(make("d", severity::critical), wall0, t0)
        == delivery::deliver_now);
  auto c = config();
  c.severity_filter = {"critical", "bogus"};
  notification_rules only{c};
  CHECK(only.decide(make("e", severity::error), wall0, t0)
        == delivery::dropped_filtered);
  CHECK(only.decide(make("f", severity::critical), wall0, t0)
        == delivery::deliver_now);
}

TEST_CASE("notifications: quiet hours, start inclusive, end exclusive") {
  auto c = config();
  c.quiet_hours = "09:00-17:30";
  notification_rules rules{c};
  CHECK_FALSE(rules.in_quiet_hours(8 * 60 + 59));
  CHECK(rules.in_quiet_hours(9 * 60));
  CHECK(rules.in_quiet_hours(17 * 60 + 29));
  CHECK_FALSE(rules.in_quiet_hours(17 * 60 + 30));
}

TEST_CASE("notifications: quiet hours across midnight") {
  auto c = config();
  c.quiet_hours = "22:00-06:00";
  notification_rules rules{c};
  CHECK(rules.in_quiet_hours(22 * 60));
  CHECK(rules.in_quiet_hours(23 * 60 + 59));
  CHECK(rules.in_quiet_hours(0));
  CHECK(rules.in_quiet_hours(5 * 60 + 59));
  CHECK_FALSE(rules.in_quiet_hours(6 * 60));
  CHECK_FALSE(rules.in_quiet_hours(21 * 60 + 59));
  CHECK_FALSE(rules.in_quiet_hours(12 * 60));
}

TEST_CASE("notifications: equal bounds or no quiet hours mean never quiet") {
  auto c = config();
  c.quiet_hours = "08:00-08:00";
  notification_rules equal{c};
  for (int m : {0, 8 * 60, 8 * 60 + 1, 1439})
    CHECK_FALSE(equal.in_quiet_hours(m));
  notification_rules none{config()};
  CHECK_FALSE(none.in_quiet_hours(0));
  c.quiet_hours = "8:00-9:00"; // malformed: disabled
  notification_rules bad{c};
  CHECK_FALSE(bad.in_quiet_hours(8 * 60 + 30));
}

TEST_CASE("notifications: quiet hours use local time and drop notifications") {
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  auto c = config();
  c.quiet_hours = "22:00-06:00";
  notification_rules rules{c};
  CHECK(rules.decide(make("x"), utc("2026-03-01T23:15:00Z"), t0)
        == delivery::dropped_quiet);
  CHECK(rules.decide(make("x"), utc("2026-03-01T12:00:00Z"), t0)
        == delivery::deliver_now);
  ::setenv("TZ", "Asia/Tokyo", 1); // UTC+9, no DST
  ::tzset();
  if (notification_rules::local_minute_of_day(utc("2026-03-01T14:00:00Z"))
      == 23 * 60) // zoneinfo present
    CHECK(rules.in_quiet_hours(utc("2026-03-01T14:00:00Z")));
  ::unsetenv("TZ");
  ::tzset();
}

TEST_CASE("notifications: dedup within and after the window") {
  notification_rules rules{config(30000)};
  CHECK(rules.decide(make("a"), wall0, t0) == delivery::deliver_now);
  CHECK(rules.decide(make("a"), wall0, t0 + seconds{29})
        == delivery::dropped_duplicate);
  CHECK(rules.decide(make("b"), wall0, t0 + seconds{29})
        == delivery::deliver_now);
  CHECK(rules.decide(make("a"), wall0, t0 + seconds{30})
        == delivery::deliver_now);
  // Same explicit id with another title: still a duplicate.
  CHECK(rules.decide(make("x", severity::error, "id1"), wall0, t0 + seconds{40})
        == delivery::deliver_now);
  CHECK(rules.decide(make("y", severity::error, "id1"), wall0, t0 + seconds{41})
        == delivery::dropped_duplicate);
}

TEST_CASE("notifications: keys older than the dedup window are pruned") {
  notification_rules rules{config(1000)};
  for (int i = 0; i < 100; ++i)
    CHECK(rules.decide(make("t" + std::to_string(i)), wall0,
                       t0 + milliseconds{i})
          == delivery::deliver_now);
  CHECK(rules.remembered_keys() == 100);
  // A key re-accepted later survives the pruning of its older entry.
  CHECK(rules.decide(make("t0"), wall0, t0 + milliseconds{1500})
        == delivery::deliver_now);
  CHECK(rules.decide(make("z"), wall0, t0 + milliseconds{1500})
        == delivery::deliver_now);
  CHECK(rules.remembered_keys() == 2);
  CHECK(rules.decide(make("t0"), wall0, t0 + milliseconds{1600})
        == delivery::dropped_duplicate);
  rules.decide(make("w", severity::info), wall0, t0 + seconds{10});
  CHECK(rules.remembered_keys() == 0);
}

TEST_CASE("notifications: a batch of one is delivered unchanged") {
  notification_rules rules{config(30000, 5000)};
  auto n = make("only", severity::error, "id-1");
  n.body = "details";
  CHECK(rules.decide(n, wall0, t0) == delivery::batched);
  REQUIRE(rules.batch_due());
  CHECK(*rules.batch_due() == t0 + seconds{5});
  CHECK(rules.flush_batch(t0 + seconds{4}).empty());
  auto out = rules.flush_batch(t0 + seconds{5});
  REQUIRE(out.size() == 1);
  CHECK(out[0].id == "id-1");
  CHECK(out[0].title == "only");
  CHECK(out[0].body == "details");
  CHECK(out[0].sev == severity::error);
  CHECK_FALSE(rules.batch_due());
  CHECK(rules.flush_batch(t0 + seconds{60}).empty());
}

TEST_CASE("notifications: several batched notifications fold into one") {
  notification_rules rules{config(30000, 5000)};
  CHECK(rules.decide(make("first", severity::warning), wall0, t0)
        == delivery::batched);
  CHECK(rules.decide(make("second", severity::critical, "k2"), wall0,
                     t0 + seconds{1})
        == delivery::batched);
  CHECK(rules.decide(make("third", severity::error), wall0, t0 + seconds{2})
        == delivery::batched);
  CHECK(rules.decide(make("first"), wall0, t0 + seconds{3})
        == delivery::dropped_duplicate);
  CHECK(*rules.batch_due() == t0 + seconds{5});
  auto out = rules.flush_batch(t0 + seconds{5});
  REQUIRE(out.size() == 1);
  auto& b = out[0];
  CHECK(b.id == "batch:test:run1:first,k2,test:run1:third");
  CHECK(b.source == "batch");
  CHECK(b.sev == severity::critical);
  CHECK(b.title == "3 crew notifications");
  CHECK(b.body == "\xE2\x80\xA2 first\n\xE2\x80\xA2 second\n\xE2\x80\xA2 third");
  // The next batch starts its own window.
  CHECK(rules.decide(make("fourth"), wall0, t0 + seconds{7})
        == delivery::batched);
  CHECK(*rules.batch_due() == t0 + seconds{12});
  CHECK(rules.flush_batch(t0 + seconds{8}, true).size() == 1);
}

TEST_CASE("notifications: deadletter alert fires once per hour of excess") {
  deadletter_alert alert{3};
  CHECK_FALSE(alert.record(t0));
  CHECK_FALSE(alert.record(t0 + minutes{1}));
  CHECK_FALSE(alert.record(t0 + minutes{2}));
  CHECK(alert.record(t0 + minutes{3})); // the 4th within the hour
  CHECK(alert.count(t0 + minutes{3}) == 4);
  for (int i = 4; i < 20; ++i)
    CHECK_FALSE(alert.record(t0 + minutes{i}));
  // Still above the limit an hour after the alert: one more alert.
  CHECK(alert.record(t0 + minutes{63}));
  CHECK_FALSE(alert.record(t0 + minutes{64}));
}

TEST_CASE("notifications: deadletter alert fires again after a quiet hour") {
  deadletter_alert alert{2};
  for (int i = 0; i < 2; ++i)
    CHECK_FALSE(alert.record(t0 + seconds{i}));
  CHECK(alert.record(t0 + seconds{2}));
  // Two hours later the old ones are out of the window.
  auto t1 = t0 + hours{2};
  CHECK(alert.count(t1) == 0);
  CHECK_FALSE(alert.record(t1));
  CHECK_FALSE(alert.record(t1 + seconds{1}));
  CHECK(alert.record(t1 + seconds{2}));
  CHECK(deadletter_alert_title(3) == "More than 3 deadletters within an hour");
}

TEST_CASE("notifications: sink writes redacted lines named by UTC date") {
  test::temp_dir dir{"crew-notify"};
  auto n = make("Task t1 heartbeat dead", severity::warning, "dead_run1_t1");
  n.body = "retrying with token=abc123 and API_KEY=zzz";
  n.timestamp = utc("2026-03-01T23:59:59.500Z");
  write_notification_jsonl(dir.path, 7, n);
  auto text = test::slurp(dir.path / "2026-03-01.jsonl");
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');
  auto j = nlohmann::json::parse(text);
  CHECK(j["id"] == "dead_run1_t1");
  CHECK(j["severity"] == "warning");
  CHECK(j["source"] == "test");
  CHECK(j["runId"] == "run1");
  CHECK(j["title"] == "Task t1 heartbeat dead");
  CHECK(j["timestamp"] == "2026-03-01T23:59:59.500Z");
  auto body = j["body"].get<std::string>();
  CHECK(body.find("abc123") == std::string::npos);
  CHECK(body.find("zzz") == std::string::npos);
  CHECK(body.find("token=***") != std::string::npos);
  // Half a second later it is another UTC day: another file.
  n.timestamp = utc("2026-03-02T00:00:00.000Z");
  n.run_id.clear();
  n.body.clear();
  write_notification_jsonl(dir.path, 7, n);
  auto second = nlohmann::json::parse(test::slurp(dir.path / "2026-03-02.jsonl"));
  CHECK_FALSE(second.contains("runId"));
  CHECK_FALSE(second.contains("body"));
}

TEST_CASE("notifications: sink prunes dated files older than the retention") {
  test::temp_dir dir{"crew-notify"};
  for (auto name : {"2026-02-20.jsonl", "2026-02-21.jsonl", "2026-02-22.jsonl",
                    "2026-02-28.jsonl", "notes.jsonl", "2026-01-01.txt"})
    test::append_to(dir.path / name, "{}\n");
  auto n = make("x");
  n.timestamp = utc("2026-03-01T10:00:00Z");
  write_notification_jsonl(dir.path, 7, n);
  CHECK_FALSE(fs::exists(dir.path / "2026-02-20.jsonl"));
  CHECK_FALSE(fs::exists(dir.path / "2026-02-21.jsonl"));
  CHECK(fs::exists(dir.path / "2026-02-22.jsonl")); // exactly 7 days before
  CHECK(fs::exists(dir.path / "2026-02-28.jsonl"));
  CHECK(fs::exists(dir.path / "2026-03-01.jsonl"));
  CHECK(fs::exists(dir.path / "notes.jsonl"));
  CHECK(fs::exists(dir.path / "2026-01-01.txt"));
}
