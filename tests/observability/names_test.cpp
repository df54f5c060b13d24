#include "observability/names.hpp"

#include <doctest/doctest.h>

using namespace crew;

TEST_CASE("names: accepts pi-crew's catalogue names") {
  for (auto name : {"crew.run.count", "crew.run.duration_ms",
                    "crew.task.retry_attempt_total",
                    "crew.heartbeat.staleness_ms", "crew.a.b"})
    CHECK_MESSAGE(is_valid_metric_name(name), name);
}

TEST_CASE("names: rejects names outside ^crew\\.[a-z]+\\.[a-z][a-z_]*$") {
  for (auto name :
       {"", "crew", "crew.", "crew.run", "crew.run.", "run.count",
        "crew.Run.count", "crew.run.Count", "crew.run._count",
        "crew.run.1count", "crew.run.count2", "crew.run.count.x", "crew..count",
        "crew.run.dur-ms", "pi.run.count", "crew_run_count"})
    CHECK_MESSAGE(!is_valid_metric_name(name), name);
}

TEST_CASE("names: label names follow Prometheus and reject the __ prefix") {
  CHECK(is_valid_label_name("status"));
  CHECK(is_valid_label_name("runId"));
  CHECK(is_valid_label_name("_x9"));
  CHECK(!is_valid_label_name(""));
  CHECK(!is_valid_label_name("__name__"));
  CHECK(!is_valid_label_name("9lives"));
  CHECK(!is_valid_label_name("task-id"));
  CHECK(!is_valid_label_name("task.id"));
}

TEST_CASE("names: prometheus_name replaces dots with underscores") {
  CHECK(prometheus_name("crew.task.retry_count") == "crew_task_retry_count");
  CHECK(prometheus_name("crew.run.count") == "crew_run_count");
}
