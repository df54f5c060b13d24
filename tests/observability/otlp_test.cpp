#include "observability/otlp.hpp"

#include <nlohmann/json.hpp>

#include <doctest/doctest.h>

using namespace crew;
using json = nlohmann::json;

namespace {

std::vector<metric_family> sample_registry() {
  metric_registry reg;
  reg.counter_family("crew.run.count", "Runs.")
      .add({{"status", "completed"}})
      .inc(3);
  reg.gauge_family("crew.heartbeat.staleness_ms", "Staleness.")
      .add({{"runId", "r1"}, {"taskId", "t1"}})
      .set(250);
  auto& h
      = reg.histogram_family("crew.task.retry_count", "Retries.", {0, 1, 2});
  h.add({{"team", "x"}}).observe(1);
  h.add({{"team", "x"}}).observe(7);
  reg.counter_family("crew.mailbox.count", "No samples.");
  return reg.collect();
}

std::string full_body() {
  otlp_resource res;
  res.attributes = {{"host.name", "box"}};
  return otlp_metrics_json(sample_registry(), res, 1000000000000000000ull,
                           1700000000123456789ull);
}

json& metric_at(json& body, size_t i) {
  return body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][i];
}

} // namespace

TEST_CASE("otlp: resource starts with service.name=crew and names the scope") {
  auto body = json::parse(full_body());
  auto& rm = body["resourceMetrics"][0];
  auto& attrs = rm["resource"]["attributes"];
  REQUIRE(attrs.size() == 2);
  CHECK(attrs[0]
        == json::parse(
            R"({"key":"service.name","value":{"stringValue":"crew"}})"));
  CHECK(attrs[1]["key"] == "host.name");
  CHECK(rm["scopeMetrics"][0]["scope"]
        == json::parse(R"({"name":"crew","version":"0.1.0"})"));
}

TEST_CASE("otlp: counters are cumulative monotonic sums with string nanos") {
  auto body = json::parse(full_body());
  auto& m = metric_at(body, 0);
  CHECK(m["name"] == "crew.run.count");
  CHECK(m["description"] == "Runs.");
  CHECK(!m.contains("unit"));
  CHECK(m["sum"]["aggregationTemporality"] == 2);
  CHECK(m["sum"]["isMonotonic"] == true);
  auto& p = m["sum"]["dataPoints"][0];
  CHECK(p["startTimeUnixNano"] == "1000000000000000000");
  CHECK(p["timeUnixNano"] == "1700000000123456789");
  CHECK(p["asDouble"] == 3.0);
  CHECK(p["attributes"][0]
        == json::parse(
            R"({"key":"status","value":{"stringValue":"completed"}})"));
}

TEST_CASE("otlp: gauges keep dotted names and get unit ms from _ms") {
  auto body = json::parse(full_body());
  auto& m = metric_at(body, 1);
  CHECK(m["name"] == "crew.heartbeat.staleness_ms");
  CHECK(m["unit"] == "ms");
  auto& p = m["gauge"]["dataPoints"][0];
  CHECK(p["asDouble"] == 250.0);
  CHECK(p["attributes"].size() == 2);
  CHECK(!m["gauge"].contains("aggregationTemporality"));
}

TEST_CASE("otlp: histograms carry bucketCounts and explicitBounds") {
  auto body = json::parse(full_body());
  auto& m = metric_at(body, 2);
  CHECK(m["histogram"]["aggregationTemporality"] == 2);
  auto& p = m["histogram"]["dataPoints"][0];
  CHECK(p["count"] == "2");
  CHECK(p["sum"] == 8.0);
  CHECK(p["bucketCounts"] == json::parse(R"(["0","1","0","1"])"));
  CHECK(p["explicitBounds"] == json::parse("[0,1,2]"));
}

TEST_CASE("otlp: a family without samples has empty dataPoints") {
  auto body = json::parse(full_body());
  auto& m = metric_at(body, 3);
  CHECK(m["sum"]["dataPoints"].empty());
}

TEST_CASE("otlp: an overridden service.name stays first") {
  otlp_resource res;
  res.attributes = {{"a", "b"}, {"service.name", "crew-test"}};
  auto body = json::parse(otlp_metrics_json({}, res, 1, 2));
  auto& attrs = body["resourceMetrics"][0]["resource"]["attributes"];
  REQUIRE(attrs.size() == 2);
  CHECK(attrs[0]["value"]["stringValue"] == "crew-test");
  CHECK(attrs[1]["key"] == "a");
}

TEST_CASE("otlp: the encoder's output passes the validator") {
  auto result = validate_otlp_metrics_json(full_body());
  for (auto& p : result.problems)
    INFO(p);
  CHECK(result.ok);
  CHECK(result.problems.empty());
}

namespace {

/// Validates `full_body()` after `mutate` and returns the problems.
template <class F>
std::vector<std::string> problems_after(F mutate) {
  auto body = json::parse(full_body());
  mutate(body);
  auto result = validate_otlp_metrics_json(body.dump());
  CHECK(!result.ok);
  return result.problems;
}

bool mentions(const std::vector<std::string>& problems, std::string_view s) {
  for (auto& p : problems)
    if (p.find(s) != std::string::npos)
      return true;
  return false;
}

} // namespace

TEST_CASE("otlp: validator rejects malformed JSON and missing roots") {
  CHECK(!validate_otlp_metrics_json("{").ok);
  CHECK(!validate_otlp_metrics_json("[]").ok);
  CHECK(mentions(validate_otlp_metrics_json("{}").problems,
                 "resourceMetrics: missing"));
}

TEST_CASE("otlp: validator rejects numeric timestamps") {
  auto p = problems_after([](json& b) {
    metric_at(b, 0)["sum"]["dataPoints"][0]["timeUnixNano"] = 17;
  });
  CHECK(mentions(p, "sum.dataPoints[0].timeUnixNano"));
}

TEST_CASE("otlp: validator rejects non-digit timestamps and missing start") {
  auto p = problems_after([](json& b) {
    auto& pt = metric_at(b, 1)["gauge"]["dataPoints"][0];
    pt["timeUnixNano"] = "12a";
    pt.erase("startTimeUnixNano");
  });
  CHECK(mentions(p, "timeUnixNano"));
  CHECK(mentions(p, "startTimeUnixNano: missing"));
}

TEST_CASE("otlp: validator requires bucketCounts = explicitBounds + 1") {
  auto p = problems_after([](json& b) {
    metric_at(b, 2)["histogram"]["dataPoints"][0]["bucketCounts"]
        = json::parse(R"(["1","1"])");
  });
  CHECK(mentions(p, "bucketCounts"));
}

TEST_CASE("otlp: validator requires counts as strings adding up") {
  auto p = problems_after([](json& b) {
    auto& pt = metric_at(b, 2)["histogram"]["dataPoints"][0];
    pt["count"] = 2;
    pt["bucketCounts"][0] = 0;
  });
  CHECK(mentions(p, "count"));
  CHECK(mentions(p, "bucketCounts[0]"));
  auto q = problems_after([](json& b) {
    metric_at(b, 2)["histogram"]["dataPoints"][0]["count"] = "3";
  });
  CHECK(mentions(q, "differs from the sum of bucketCounts"));
}

TEST_CASE("otlp: validator checks temporality and monotonic flags") {
  auto p = problems_after([](json& b) {
    metric_at(b, 0)["sum"]["aggregationTemporality"] = 0;
    metric_at(b, 0)["sum"]["isMonotonic"] = "yes";
  });
  CHECK(mentions(p, "aggregationTemporality"));
  CHECK(mentions(p, "isMonotonic"));
  auto q = problems_after([](json& b) {
    metric_at(b, 2)["histogram"]["aggregationTemporality"] = "2";
  });
  CHECK(mentions(q, "aggregationTemporality"));
}

TEST_CASE("otlp: validator rejects snake_case keys and bad values") {
  auto p = problems_after([](json& b) {
    auto& pt = metric_at(b, 0)["sum"]["dataPoints"][0];
    pt["as_double"] = pt["asDouble"];
    pt.erase("asDouble");
  });
  CHECK(mentions(p, "not lowerCamelCase"));
  CHECK(mentions(p, "exactly one of asDouble and asInt"));
  auto q = problems_after([](json& b) {
    metric_at(b, 0)["sum"]["dataPoints"][0]["attributes"][0]["value"]
        = json::parse(R"({"intValue": 5})");
  });
  CHECK(mentions(q, "intValue"));
}

TEST_CASE("otlp: validator requires exactly one data kind per metric") {
  auto p = problems_after(
      [](json& b) { metric_at(b, 1)["sum"] = metric_at(b, 0)["sum"]; });
  CHECK(mentions(p, "exactly one of sum, gauge, histogram"));
  auto q = problems_after([](json& b) { metric_at(b, 0).erase("name"); });
  CHECK(mentions(q, "name"));
}
