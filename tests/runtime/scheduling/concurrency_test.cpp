#include "runtime/scheduling/concurrency.hpp"

#include <doctest/doctest.h>

using namespace crew;

TEST_CASE("concurrency: built-in defaults by workflow name") {
  CHECK_EQ(default_concurrency("parallel-research"), 4u);
  CHECK_EQ(default_concurrency("research"), 2u);
  CHECK_EQ(default_concurrency("implementation"), 2u);
  CHECK_EQ(default_concurrency("review"), 2u);
  CHECK_EQ(default_concurrency("default"), 2u);
  CHECK_EQ(default_concurrency("fast-fix"), 1u);
  CHECK_EQ(default_concurrency("demo"), 1u);
  CHECK_EQ(default_concurrency(""), 1u);
  CHECK_EQ(default_concurrency("Research"), 1u); // case-sensitive
}

TEST_CASE("concurrency: the workflow default applies when nothing is set") {
  concurrency_inputs in;
  in.workflow_name = "parallel-research";
  auto d = resolve_concurrency(in);
  CHECK_EQ(d.max_concurrent, 4u);
  CHECK_EQ(d.requested, 4u);
  CHECK_EQ(d.reason, "workflow:4");
  in.workflow_name = "something-else";
  d = resolve_concurrency(in);
  CHECK_EQ(d.max_concurrent, 1u);
  CHECK_EQ(d.reason, "workflow:1");
}

TEST_CASE("concurrency: precedence is limit, then team, then workflow") {
  concurrency_inputs in;
  in.workflow_name = "research";
  in.workflow_max = 3;
  auto d = resolve_concurrency(in);
  CHECK_EQ(d.max_concurrent, 3u);
  CHECK_EQ(d.reason, "workflow:3");
  in.team_max = 2;
  d = resolve_concurrency(in);
  CHECK_EQ(d.max_concurrent, 2u);
  CHECK_EQ(d.requested, 2u);
  CHECK_EQ(d.reason, "team:2");
  in.limit_max = 5;
  d = resolve_concurrency(in);
  CHECK_EQ(d.max_concurrent, 5u);
  CHECK_EQ(d.reason, "limit:5");
}

TEST_CASE("concurrency: above 8 is capped unless unbounded") {
  concurrency_inputs in;
  in.workflow_name = "research";
  in.team_max = 2;
  in.limit_max = 16;
  auto d = resolve_concurrency(in);
  CHECK_EQ(d.requested, 16u);
  CHECK_EQ(d.max_concurrent, 8u);
  CHECK_EQ(d.reason, "limit:16;capped:8");
  in.allow_unbounded = true;
  d = resolve_concurrency(in);
  CHECK_EQ(d.requested, 16u);
  CHECK_EQ(d.max_concurrent, 16u);
  CHECK_EQ(d.reason, "limit:16;unbounded:8");
}

TEST_CASE("concurrency: exactly the cap is not capped, team and workflow are "
          "capped too") {
  concurrency_inputs in;
  in.team_max = concurrency_hard_cap;
  auto d = resolve_concurrency(in);
  CHECK_EQ(d.max_concurrent, 8u);
  CHECK_EQ(d.reason, "team:8");
  in.team_max = 9;
  d = resolve_concurrency(in);
  CHECK_EQ(d.max_concurrent, 8u);
  CHECK_EQ(d.reason, "team:9;capped:8");
  in.team_max = 0;
  in.workflow_max = 12;
  d = resolve_concurrency(in);
  CHECK_EQ(d.max_concurrent, 8u);
  CHECK_EQ(d.reason, "workflow:12;capped:8");
}
