#include "runtime/scheduling/planning.hpp"

#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

using namespace crew;

namespace {

workflow_step step(std::string id, std::string role,
                   std::vector<std::string> deps = {}) {
  workflow_step s;
  s.id = std::move(id);
  s.role = std::move(role);
  s.task = "do {goal}";
  s.depends_on = std::move(deps);
  return s;
}

} // namespace

TEST_CASE("planning: normalize_step_id") {
  CHECK_EQ(normalize_step_id("explore"), "explore");
  CHECK_EQ(normalize_step_id("01_agent"), "01-agent");
  CHECK_EQ(normalize_step_id("  X Y!! "), "x-y");
  CHECK_EQ(normalize_step_id("___"), "task");
  CHECK_EQ(normalize_step_id(""), "task");
  CHECK_EQ(normalize_step_id("--a--b--"), "a--b");
  CHECK_EQ(normalize_step_id("Build-API v2"), "build-api-v2");
  CHECK_EQ(normalize_step_id("\xc3\xa9t\xc3\xa9"), "t"); // non-ASCII -> '-'
}

TEST_CASE("planning: build_plan ids, agents from team roles, deps resolved") {
  team_def team;
  team.name = "t";
  team.roles = {{"explorer", "scout", ""}, {"writer", "author", ""}};
  workflow_def wf;
  wf.name = "w";
  wf.path = "w.workflow.md";
  wf.steps = {step("explore", "explorer"), step("Write Up", "writer", {"explore"}),
              step("review", "reviewer", {"explore", "Write Up"})};
  wf.steps[2].model = "m1";
  auto plan = build_plan(team, wf);
  REQUIRE_EQ(plan.size(), 3u);
  CHECK_EQ(plan[0].id, "01_explore");
  CHECK_EQ(plan[1].id, "02_write-up");
  CHECK_EQ(plan[2].id, "03_review");
  CHECK_EQ(plan[0].step_id, "explore");
  CHECK_EQ(plan[1].step_id, "Write Up");
  CHECK_EQ(plan[0].agent, "scout");
  CHECK_EQ(plan[1].agent, "author");
  CHECK_EQ(plan[2].agent, "reviewer"); // no such role: the role name
  CHECK_EQ(plan[0].role, "explorer");
  CHECK_EQ(plan[2].model, "m1");
  CHECK_EQ(plan[0].task, "do {goal}");
  CHECK(plan[0].deps.empty());
  CHECK_EQ(plan[1].deps, std::vector<uint32_t>{0});
  CHECK_EQ(plan[2].deps, (std::vector<uint32_t>{0, 1}));
  CHECK_EQ(plan[2].depends_on, (std::vector<std::string>{"explore", "Write Up"}));
}

TEST_CASE("planning: build_plan rejects an unknown dependency") {
  team_def team;
  workflow_def wf;
  wf.path = "bad.workflow.md";
  wf.steps = {step("a", "a", {"nope"})};
  CHECK_THROWS(build_plan(team, wf));
}

TEST_CASE("planning: step text that is not UTF-8 is an error naming the field "
          "and line") {
  workflow_def wf;
  wf.path = "w.workflow.md";
  wf.steps = {step("ok", "r"), step("a\xFF", "a\xFF"), step("b", "r\xC3")};
  wf.steps[0].task = "caf\xC3\xA9 {goal}"; // well-formed: fine
  wf.steps[1].line = 5;
  wf.steps[2].line = 9;
  wf.steps[2].task = "line one\nline two \xE2\x82 cut";
  wf.steps[2].task_line = 11;
  wf.steps[2].depends_on = {"ok", "x\x80"};
  auto issues = step_text_issues(wf);
  REQUIRE_EQ(issues.size(), 4u);
  // the default role is the id: one issue for both
  CHECK_EQ(issues[0].to_string(),
           "w.workflow.md:5: step 'a\xEF\xBF\xBD': id is not valid UTF-8 (byte 0xFF)");
  CHECK_EQ(issues[1].to_string(),
           "w.workflow.md:9: step 'b': role is not valid UTF-8 (byte 0xC3)");
  CHECK_EQ(issues[2].to_string(),
           "w.workflow.md:12: step 'b': task is not valid UTF-8 (byte 0xE2)");
  CHECK_EQ(issues[3].to_string(),
           "w.workflow.md:9: step 'b': dependsOn is not valid UTF-8 (byte 0x80)");
  for (auto& issue : issues)
    CHECK(issue.error);
  wf.steps.resize(1);
  CHECK(step_text_issues(wf).empty());
}

TEST_CASE("planning: graph_shape names round-trip") {
  for (auto s : {graph_shape::fanout, graph_shape::chain, graph_shape::diamond,
                 graph_shape::random}) {
    graph_shape x{};
    CHECK(from_string(to_string(s), x));
    CHECK_EQ(x, s);
  }
  graph_shape x = graph_shape::chain;
  CHECK_FALSE(from_string("star", x));
  CHECK_EQ(x, graph_shape::chain);
}

TEST_CASE("planning: synthetic fanout and chain") {
  auto fan = synthetic_plan(graph_shape::fanout, 50, 1);
  REQUIRE_EQ(fan.size(), 50u);
  CHECK_EQ(fan[0].id, "t1");
  CHECK_EQ(fan[49].id, "t50");
  CHECK(fan[0].deps.empty());
  for (size_t i = 1; i < fan.size(); ++i) {
    CHECK_EQ(fan[i].deps, std::vector<uint32_t>{0});
    CHECK_EQ(fan[i].depends_on, std::vector<std::string>{"t1"});
  }
  auto chain = synthetic_plan(graph_shape::chain, 20, 1);
  CHECK(chain[0].deps.empty());
  for (uint32_t i = 1; i < chain.size(); ++i)
    CHECK_EQ(chain[i].deps, std::vector<uint32_t>{i - 1});
  for (auto& t : chain) {
    CHECK_EQ(t.role, "sim");
    CHECK_EQ(t.agent, "sim");
  }
}

TEST_CASE("planning: synthetic diamond joins n-2 parallel tasks") {
  uint32_t n = 10;
  auto d = synthetic_plan(graph_shape::diamond, n, 1);
  CHECK(d[0].deps.empty());
  for (uint32_t i = 1; i + 1 < n; ++i)
    CHECK_EQ(d[i].deps, std::vector<uint32_t>{0});
  REQUIRE_EQ(d[n - 1].deps.size(), n - 2);
  for (uint32_t k = 0; k < n - 2; ++k)
    CHECK_EQ(d[n - 1].deps[k], k + 1);
  auto two = synthetic_plan(graph_shape::diamond, 2, 1);
  CHECK_EQ(two[1].deps, std::vector<uint32_t>{0});
  CHECK(synthetic_plan(graph_shape::diamond, 0, 1).empty());
  CHECK_EQ(synthetic_plan(graph_shape::diamond, 1, 1).size(), 1u);
}

TEST_CASE("planning: synthetic random is acyclic and deterministic per seed") {
  auto a = synthetic_plan(graph_shape::random, 500, 7);
  auto b = synthetic_plan(graph_shape::random, 500, 7);
  auto c = synthetic_plan(graph_shape::random, 500, 8);
  bool differs = false;
  for (uint32_t i = 0; i < a.size(); ++i) {
    CHECK_EQ(a[i].deps, b[i].deps);
    differs = differs || a[i].deps != c[i].deps;
    std::set<uint32_t> uniq(a[i].deps.begin(), a[i].deps.end());
    CHECK_EQ(uniq.size(), a[i].deps.size());
    CHECK_LE(a[i].deps.size(), 3u);
    if (i > 0)
      CHECK_GE(a[i].deps.size(), 1u);
    for (auto d : a[i].deps)
      CHECK_LT(d, i);
    REQUIRE_EQ(a[i].depends_on.size(), a[i].deps.size());
    for (size_t k = 0; k < a[i].deps.size(); ++k)
      CHECK_EQ(a[i].depends_on[k], a[a[i].deps[k]].id);
  }
  CHECK(differs);
}
