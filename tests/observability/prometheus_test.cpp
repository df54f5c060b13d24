#include "observability/prometheus.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "tests/support/shell.hpp"

using namespace crew;

namespace {

std::string number(double x) {
  std::string out;
  append_prometheus_number(out, x);
  return out;
}

metric_family family_of(std::string name, metric_type type,
                        std::vector<metric_sample> samples,
                        std::string help = "Help.") {
  return metric_family{std::move(name), std::move(help), type,
                       std::move(samples)};
}

} // namespace

TEST_CASE("prometheus: content type names version 0.0.4") {
  CHECK(std::string{prometheus_content_type}
        == "text/plain; version=0.0.4; charset=utf-8");
}

TEST_CASE("prometheus: formats integers without exponent and specials") {
  CHECK(number(0) == "0");
  CHECK(number(42) == "42");
  CHECK(number(-3) == "-3");
  CHECK(number(1e15) == "1000000000000000");
  CHECK(number(1e18) == "1000000000000000000");
  CHECK(number(2.5) == "2.5");
  CHECK(number(0.1) == "0.1");
  CHECK(number(NAN) == "NaN");
  CHECK(number(INFINITY) == "+Inf");
  CHECK(number(-INFINITY) == "-Inf");
  CHECK(std::stod(number(1.0 / 3)) == 1.0 / 3);
}

TEST_CASE("prometheus: counters get _total in TYPE and sample lines") {
  metric_sample s;
  s.labels = {{"status", "completed"}};
  s.value = 3;
  auto text = prometheus_text(
      {family_of("crew.run.count", metric_type::counter, {s}, "Runs.")});
  CHECK(text
        == "# HELP crew_run_count_total Runs.\n"
           "# TYPE crew_run_count_total counter\n"
           "crew_run_count_total{status=\"completed\"} 3\n");
}

TEST_CASE("prometheus: a counter already ending in _total keeps one suffix") {
  metric_sample s;
  s.value = 1;
  auto text = prometheus_text(
      {family_of("crew.task.retry_attempt_total", metric_type::counter, {s})});
  CHECK(text.find("crew_task_retry_attempt_total 1\n") != std::string::npos);
  CHECK(text.find("_total_total") == std::string::npos);
}

TEST_CASE("prometheus: gauges omit braces without labels") {
  metric_sample s;
  s.value = 1.5;
  auto text = prometheus_text(
      {family_of("crew.heartbeat.staleness", metric_type::gauge, {s}, "S.")});
  CHECK(text
        == "# HELP crew_heartbeat_staleness S.\n"
           "# TYPE crew_heartbeat_staleness gauge\n"
           "crew_heartbeat_staleness 1.5\n");
}

TEST_CASE("prometheus: escapes backslash, quote and newline in label values") {
  metric_sample s;
  s.labels = {{"path", "a\\b\"c\nd"}};
  auto text
      = prometheus_text({family_of("crew.run.size", metric_type::gauge, {s})});
  CHECK(text.find("crew_run_size{path=\"a\\\\b\\\"c\\nd\"} 0\n")
        != std::string::npos);
}

TEST_CASE("prometheus: escapes backslash and newline in HELP") {
  auto text = prometheus_text(
      {family_of("crew.run.size", metric_type::gauge, {}, "a\\b\nc \"q\"")});
  CHECK(text
        == "# HELP crew_run_size a\\\\b\\nc \"q\"\n"
           "# TYPE crew_run_size gauge\n");
}

TEST_CASE("prometheus: a family without samples prints HELP and TYPE only") {
  auto text = prometheus_text(
      {family_of("crew.run.count", metric_type::counter, {}, "Runs.")});
  CHECK(text
        == "# HELP crew_run_count_total Runs.\n"
           "# TYPE crew_run_count_total counter\n");
}

TEST_CASE("prometheus: empty help omits the HELP line") {
  auto text = prometheus_text(
      {family_of("crew.run.count", metric_type::counter, {}, "")});
  CHECK(text == "# TYPE crew_run_count_total counter\n");
}

TEST_CASE("prometheus: histograms have cumulative buckets, +Inf, sum, count") {
  histogram h{{1, 2.5, 5}};
  for (double v : {0.5, 2.0, 2.0, 4.0, 9.0})
    h.observe(v);
  auto s = h.collect();
  s.labels = {{"team", "x"}};
  auto text = prometheus_text(
      {family_of("crew.run.duration", metric_type::histogram, {s}, "D.")});
  CHECK(text
        == "# HELP crew_run_duration D.\n"
           "# TYPE crew_run_duration histogram\n"
           "crew_run_duration_bucket{team=\"x\",le=\"1\"} 1\n"
           "crew_run_duration_bucket{team=\"x\",le=\"2.5\"} 3\n"
           "crew_run_duration_bucket{team=\"x\",le=\"5\"} 4\n"
           "crew_run_duration_bucket{team=\"x\",le=\"+Inf\"} 5\n"
           "crew_run_duration_sum{team=\"x\"} 17.5\n"
           "crew_run_duration_count{team=\"x\"} 5\n");
}

TEST_CASE("prometheus: a histogram without labels puts le alone in braces") {
  histogram h{{1}};
  h.observe(3);
  auto text = prometheus_text(
      {family_of("crew.run.duration", metric_type::histogram, {h.collect()})});
  CHECK(text.find("crew_run_duration_bucket{le=\"1\"} 0\n")
        != std::string::npos);
  CHECK(text.find("crew_run_duration_bucket{le=\"+Inf\"} 1\n")
        != std::string::npos);
  CHECK(text.find("crew_run_duration_sum 3\n") != std::string::npos);
  CHECK(text.find("crew_run_duration_count 1\n") != std::string::npos);
}

TEST_CASE("prometheus: renders a registry in registration order") {
  metric_registry reg;
  reg.gauge_family("crew.b.value", "B").add({}).set(1);
  reg.counter_family("crew.a.value", "A").add({}).inc();
  auto text = prometheus_text(reg.collect());
  CHECK(text.find("crew_b_value") < text.find("crew_a_value_total"));
  CHECK(text.back() == '\n');
}

using crew::test::shell;

TEST_CASE("prometheus: promtool check metrics accepts the output") {
  auto [found, where] = shell("command -v promtool");
  REQUIRE_MESSAGE(found == 0,
                  "promtool not found: install Debian's `prometheus` package "
                  "(apt-get install -y prometheus); it is a declared test "
                  "dependency");
  metric_registry reg;
  auto& runs = reg.counter_family("crew.run.count", "Finished runs by status.");
  runs.add({{"status", "completed"}}).inc(3);
  runs.add({{"status", "fa\"il\\ed\nx"}}).inc();
  reg.counter_family("crew.task.retry_attempt_total", "Retry attempts.")
      .add({{"run_id", "r1"}, {"task_id", "t\\1"}})
      .inc(2);
  reg.counter_family("crew.mailbox.count", "Help with \\ and\nnewline.");
  auto& stale = reg.gauge_family("crew.heartbeat.staleness",
                                 "Heartbeat staleness in seconds.");
  stale.add({{"run_id", "r1"}, {"task_id", "t1"}}).set(1.25);
  stale.add({{"run_id", "r\"2"}, {"task_id", "t2"}}).set(-3);
  auto& retries = reg.histogram_family(
      "crew.task.retry_count", "Retries per task.", {0, 1, 2, 3, 5, 10});
  retries.add({{"team", "default"}}).observe(2);
  retries.add({{"team", "multi\nline"}}).observe(42);
  auto& dur = reg.histogram_family("crew.run.duration_seconds", "Run duration.",
                                   {0.005, 0.5, 2.5, 60});
  for (double v : {0.001, 0.2, 3.0, 1000.0})
    dur.add({{"team", "t"}}).observe(v);
  auto text = prometheus_text(reg.collect());
  auto path = std::filesystem::temp_directory_path()
              / ("crew_promtool_" + std::to_string(getpid()) + ".prom");
  {
    std::ofstream out{path, std::ios::binary};
    out << text;
  }
  auto [status, output] = shell("promtool check metrics < " + path.string());
  std::filesystem::remove(path);
  INFO("promtool output:\n" << output << "\ninput:\n" << text);
  CHECK(status == 0);
}
