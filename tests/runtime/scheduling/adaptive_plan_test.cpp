#include "runtime/scheduling/adaptive_plan.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "runtime/scheduling/planning.hpp"
#include "runtime/scheduling/research_expansion.hpp"
#include "store/snapshot.hpp"

using namespace crew;

namespace {

/// The builtin implementation team; `executor` runs as agent `builder`.
team_def implementation_team() {
  team_def team;
  team.name = "implementation";
  for (auto name :
       {"explorer", "analyst", "planner", "critic", "executor", "reviewer",
        "security-reviewer", "test-engineer", "verifier", "writer"})
    team.roles.push_back({name, name, ""});
  team.roles[4].agent = "builder";
  return team;
}

std::string marked(std::string_view json) {
  return fmt::format("Rationale first.\nADAPTIVE_PLAN_JSON_START\n{}\n"
                     "ADAPTIVE_PLAN_JSON_END\nDone.",
                     json);
}

/// A plan of `n` executor tasks in one phase.
std::string executor_tasks(size_t n) {
  std::string tasks;
  for (size_t i = 0; i < n; ++i)
    tasks += fmt::format("{}{{\"role\":\"executor\",\"task\":\"t{}\"}}",
                         i == 0 ? "" : ",", i + 1);
  return tasks;
}

std::vector<std::string> roles_of(const adaptive_phase& phase) {
  std::vector<std::string> out;
  for (const auto& t : phase.tasks)
    out.push_back(t.role);
  return out;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

bool has_repair(const adaptive_parse_result& r, std::string_view needle) {
  return std::any_of(r.repairs.begin(), r.repairs.end(),
                     [&](const std::string& x) { return contains(x, needle); });
}

} // namespace

// -- extraction ---------------------------------------------------------------

TEST_CASE("adaptive_plan: markers win over fences") {
  auto text = "```json\n{\"x\":1}\n```\nADAPTIVE_PLAN_JSON_START  {\"y\":2} \n"
              "ADAPTIVE_PLAN_JSON_END";
  auto got = extract_adaptive_plan_text(text);
  REQUIRE(got);
  CHECK_EQ(*got, "{\"y\":2}");
}

TEST_CASE("adaptive_plan: fenced fallback, optional json info word") {
  CHECK_EQ(extract_adaptive_plan_text("a\n```json\n{\"a\":1}\n```\n```{}```"),
           "{\"a\":1}");
  CHECK_EQ(extract_adaptive_plan_text("```JSON {\"a\":1}```"), "{\"a\":1}");
  CHECK_EQ(extract_adaptive_plan_text("```\n{\"b\":2}\n```"), "{\"b\":2}");
  // a start marker without an end marker falls back to the fence
  CHECK_EQ(extract_adaptive_plan_text(
               "ADAPTIVE_PLAN_JSON_START {\n```json\n{\"c\":3}\n```"),
           "{\"c\":3}");
  CHECK_FALSE(extract_adaptive_plan_text("no plan here"));
  CHECK_FALSE(extract_adaptive_plan_text("```json {\"open\": true}"));
  CHECK_EQ(extract_adaptive_plan_text(
               "ADAPTIVE_PLAN_JSON_START\n\nADAPTIVE_PLAN_JSON_END"),
           "");
}

// -- strict parse -------------------------------------------------------------

TEST_CASE("adaptive_plan: strict parse of phases") {
  auto team = implementation_team();
  auto r = parse_adaptive_plan_strict(marked(R"({"phases":[
      {"name":" research ","tasks":[
        {"role":"explorer","task":" Inspect UI "},
        {"role":"analyst","title":"Risks","task":"Analyze risks"}]},
      {"tasks":[{"role":"executor","task":"Implement"}]}]})"),
                                      team);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK_FALSE(r.repaired);
  CHECK(r.repairs.empty());
  CHECK(r.strict_error.empty());
  REQUIRE_EQ(r.plan.phases.size(), 2u);
  CHECK_EQ(r.plan.phases[0].name, "research");
  CHECK_EQ(r.plan.phases[1].name, "phase-2");
  CHECK_EQ(r.plan.phases[0].tasks[0].task, "Inspect UI");
  CHECK_EQ(r.plan.phases[0].tasks[0].title, "");
  CHECK_EQ(r.plan.phases[0].tasks[1].title, "Risks");
  CHECK_EQ(r.plan.task_count(), 3u);
}

TEST_CASE("adaptive_plan: strict parse of top-level tasks and a fence") {
  auto team = implementation_team();
  auto r = parse_adaptive_plan_strict(
      "Plan:\n```json\n{\"tasks\":[" + executor_tasks(12) + "]}\n```", team);
  REQUIRE_MESSAGE(r.ok, r.error);
  REQUIRE_EQ(r.plan.phases.size(), 1u);
  CHECK_EQ(r.plan.phases[0].name, "adaptive");
  CHECK_EQ(r.plan.task_count(), 12u);
}

TEST_CASE("adaptive_plan: each strict violation has a precise reason") {
  auto team = implementation_team();
  auto reason = [&](std::string_view output) {
    auto r = parse_adaptive_plan_strict(output, team);
    CHECK_FALSE(r.ok);
    CHECK_EQ(r.error, r.strict_error);
    return r.error;
  };
  CHECK(contains(reason("nothing"), "no adaptive plan found"));
  CHECK(contains(reason(marked("")), "block is empty"));
  CHECK(contains(reason(marked("{\"phases\":[")), "invalid JSON"));
  CHECK(contains(reason(marked("[1,2]")), "not a JSON object"));
  CHECK(contains(reason(marked(R"({"phases":{}})")),
                 "neither a 'phases' nor a 'tasks' array"));
  CHECK(contains(reason(marked(R"({"phases":[]})")), "no phases"));
  CHECK_EQ(reason(marked(R"({"phases":[3]})")), "phase 1: not an object");
  CHECK_EQ(reason(marked(R"({"phases":[{"name":"build","tasks":[]}]})")),
           "phase 1 ('build'): 'tasks' must be a non-empty array");
  CHECK_EQ(reason(marked(R"({"phases":[{"name":"build"}]})")),
           "phase 1 ('build'): 'tasks' must be a non-empty array");
  auto phase2 = [](std::string_view task) {
    return marked(fmt::format(
        R"({{"phases":[{{"tasks":[{{"role":"explorer","task":"x"}}]}},
           {{"name":"build","tasks":[{{"role":"executor","task":"y"}},{}]}}]}})",
        task));
  };
  CHECK_EQ(reason(phase2("\"t\"")), "phase 2 ('build'), task 2: not an object");
  CHECK_EQ(reason(phase2(R"({"task":"z"})")),
           "phase 2 ('build'), task 2: 'role' missing or not a string");
  CHECK_EQ(reason(phase2(R"({"role":"coder","task":"z"})")),
           "phase 2 ('build'), task 2: role 'coder' is not a role of team "
           "'implementation' (explorer, analyst, planner, critic, executor, "
           "reviewer, security-reviewer, test-engineer, verifier, writer)");
  CHECK_EQ(reason(phase2(R"({"role":"executor","task":"   "})")),
           "phase 2 ('build'), task 2: 'task' missing, not a string or blank");
  CHECK_EQ(reason(phase2(R"({"role":"executor","task":7})")),
           "phase 2 ('build'), task 2: 'task' missing, not a string or blank");
  CHECK_EQ(reason(marked("{\"tasks\":[" + executor_tasks(13) + "]}")),
           "phase 1 ('adaptive'), task 13: more than 12 tasks in the plan");
}

TEST_CASE("adaptive_plan: repair can be disabled") {
  auto team = implementation_team();
  auto r = parse_adaptive_plan(
      marked(R"({"tasks":[{"role":"coder","task":"x"}]})"), team, false);
  CHECK_FALSE(r.ok);
  CHECK(contains(r.error, "role 'coder' is not a role"));
  CHECK(contains(r.error, "repair disabled"));
  // a strictly valid plan needs no repair
  r = parse_adaptive_plan(
      marked(R"({"tasks":[{"role":"executor","task":"x"}]})"), team, false);
  CHECK(r.ok);
  CHECK_FALSE(r.repaired);
}

TEST_CASE("adaptive_plan: repair_from_env reads both variables") {
  ::unsetenv("PI_CREW_ADAPTIVE_REPAIR");
  ::unsetenv("PI_TEAMS_ADAPTIVE_REPAIR");
  CHECK(adaptive_repair_from_env());
  ::setenv("PI_TEAMS_ADAPTIVE_REPAIR", "0", 1);
  CHECK_FALSE(adaptive_repair_from_env());
  ::setenv("PI_TEAMS_ADAPTIVE_REPAIR", "1", 1);
  CHECK(adaptive_repair_from_env());
  ::setenv("PI_CREW_ADAPTIVE_REPAIR", "0", 1);
  CHECK_FALSE(adaptive_repair_from_env());
  ::unsetenv("PI_CREW_ADAPTIVE_REPAIR");
  ::unsetenv("PI_TEAMS_ADAPTIVE_REPAIR");
}

// -- repair -------------------------------------------------------------------

TEST_CASE("adaptive_plan: repair closes unbalanced brackets") {
  auto team = implementation_team();
  auto r = parse_adaptive_plan(
      marked(
          R"({"phases":[{"name":"build","tasks":[{"role":"executor","task":"x"}]})"),
      team, true);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.repaired);
  CHECK(contains(r.strict_error, "invalid JSON"));
  CHECK(r.error.empty());
  CHECK(has_repair(r, "closed 2 unbalanced bracket(s)"));
  REQUIRE_EQ(r.plan.phases.size(), 1u);
  CHECK_EQ(r.plan.phases[0].tasks[0].task, "x");
}

TEST_CASE("adaptive_plan: repair of truncated output") {
  auto team = implementation_team();
  SUBCASE("cut inside a task text") {
    auto r = parse_adaptive_plan(
        "ADAPTIVE_PLAN_JSON_START\n"
        R"({"phases":[{"name":"build","tasks":[{"role":"executor","task":"Implement"},{"role":"reviewer","task":"Review the cha)"
        "\nADAPTIVE_PLAN_JSON_END",
        team, true);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(has_repair(r, "closed a truncated string"));
    CHECK(has_repair(r, "closed 5 unbalanced bracket(s)"));
    REQUIRE_EQ(r.plan.task_count(), 2u);
    CHECK_EQ(r.plan.phases[0].tasks[1].task, "Review the cha");
  }
  SUBCASE("cut inside a key: the task is dropped") {
    auto r = parse_adaptive_plan(
        marked(
            R"({"phases":[{"name":"build","tasks":[{"role":"executor","task":"a"},{"role":"reviewer","ta)"),
        team, true);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(has_repair(r, "dangling key(s)/value(s) with null"));
    CHECK(has_repair(r, "dropped task 2 of phase 'build': empty task"));
    CHECK_EQ(r.plan.task_count(), 1u);
  }
  SUBCASE("cut after a comma") {
    auto r = parse_adaptive_plan(
        marked(
            R"({"phases":[{"name":"build","tasks":[{"role":"executor","task":"a"},)"),
        team, true);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(has_repair(r, "removed 1 trailing comma(s)"));
    CHECK_EQ(r.plan.task_count(), 1u);
  }
  SUBCASE("cut after a colon and inside a literal or escape") {
    for (auto cut : {R"("urgent":)", R"("urgent":tr)", R"("urgent":-)",
                     R"("note":"a\)", R"("note":"a\u00)"}) {
      CAPTURE(cut);
      auto r = parse_adaptive_plan(
          marked(fmt::format(R"({{"tasks":[{{"role":"executor","task":"a",{})",
                             cut)),
          team, true);
      REQUIRE_MESSAGE(r.ok, r.error);
      CHECK_EQ(r.plan.phases[0].tasks[0].task, "a");
    }
  }
  SUBCASE("trailing commas and stray closers inside complete JSON") {
    auto r = parse_adaptive_plan(
        marked(R"({"tasks":[{"role":"executor","task":"a",},]}})"), team, true);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(has_repair(r, "removed 2 trailing comma(s)"));
    CHECK(has_repair(r, "dropped 1 stray closing bracket(s)"));
  }
  SUBCASE("a closer for an outer container closes the inner ones") {
    auto r = parse_adaptive_plan(
        marked(R"({"tasks":[{"role":"executor","task":"a"}})"), team, true);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(has_repair(r, "closed 1 unbalanced bracket(s)"));
    CHECK_EQ(r.plan.task_count(), 1u);
  }
}

TEST_CASE("adaptive_plan: repair maps role aliases") {
  auto team = implementation_team();
  auto r = parse_adaptive_plan(marked(R"({"phases":[{"name":"mixed","tasks":[
      {"role":"coder","task":"a"},
      {"role":"Code Review","task":"b"},
      {"role":"QA","task":"c"},
      {"role":"sec-review","task":"d"},
      {"role":"Researcher","task":"e"},
      {"role":"analyzer","task":"f"},
      {"role":"Executor","task":"g"},
      {"role":"critic","task":"h"},
      {"role":"wizard","task":"i"}]}]})"),
                               team, true);
  REQUIRE_MESSAGE(r.ok, r.error);
  REQUIRE_EQ(r.plan.phases.size(), 1u);
  CHECK_EQ(roles_of(r.plan.phases[0]),
           std::vector<std::string>{"executor", "reviewer", "test-engineer",
                                    "security-reviewer", "explorer", "analyst",
                                    "executor", "critic"});
  CHECK(has_repair(r, "role 'coder' mapped to 'executor' (task 1 of phase "
                      "'mixed')"));
  CHECK(has_repair(r, "role 'Code Review' mapped to 'reviewer'"));
  CHECK(
      has_repair(r, "dropped task 9 of phase 'mixed': unknown role 'wizard'"));
  CHECK_FALSE(has_repair(r, "role 'critic' mapped"));
  // critic maps onto reviewer only where the team has no critic role; an
  // alias never maps onto a role the team lacks
  team_def small;
  small.name = "small";
  small.roles = {{"reviewer", "reviewer", ""}, {"writer", "writer", ""}};
  r = parse_adaptive_plan(marked(R"({"tasks":[{"role":"critic","task":"a"},
      {"role":"coder","task":"b"}]})"),
                          small, true);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK_EQ(roles_of(r.plan.phases[0]), std::vector<std::string>{"reviewer"});
  CHECK(has_repair(r, "unknown role 'coder'"));
}

TEST_CASE("adaptive_plan: repair keeps the first 12 tasks") {
  auto team = implementation_team();
  auto r = parse_adaptive_plan(
      marked(fmt::format(R"({{"phases":[{{"name":"a","tasks":[{}]}},
                          {{"name":"b","tasks":[{}]}},
                          {{"name":"c","tasks":[{}]}}]}})",
                         executor_tasks(10), executor_tasks(4),
                         executor_tasks(1))),
      team, true);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(contains(r.strict_error, "more than 12 tasks"));
  CHECK_EQ(r.plan.task_count(), 12u);
  REQUIRE_EQ(r.plan.phases.size(), 2u);
  CHECK_EQ(r.plan.phases[1].tasks.size(), 2u);
  CHECK(has_repair(r, "truncated to 12 tasks: dropped 3 more task(s)"));
}

TEST_CASE("adaptive_plan: repair drops empty and malformed phases") {
  auto team = implementation_team();
  auto r = parse_adaptive_plan(marked(R"({"phases":[
      {"name":"empty","tasks":[]},
      {"name":"bad","tasks":[{"role":"wizard","task":"x"},{"role":"executor","task":""}]},
      "junk",
      {"name":"nolist","tasks":{}},
      {"tasks":[{"role":"writer","task":"Write"}]}]})"),
                               team, true);
  REQUIRE_MESSAGE(r.ok, r.error);
  REQUIRE_EQ(r.plan.phases.size(), 1u);
  CHECK_EQ(r.plan.phases[0].name, "phase-5");
  CHECK(has_repair(r, "dropped phase 1 ('empty'): no valid task"));
  CHECK(has_repair(r, "dropped task 2 of phase 'bad': empty task"));
  CHECK(has_repair(r, "dropped phase 2 ('bad'): no valid task"));
  CHECK(has_repair(r, "dropped phase 3: not an object"));
  CHECK(has_repair(r, "dropped phase 4 ('nolist'): 'tasks' is not an array"));
}

TEST_CASE("adaptive_plan: unrepairable output fails with a reason") {
  auto team = implementation_team();
  auto reason = [&](std::string_view output) {
    auto r = parse_adaptive_plan(output, team, true);
    CHECK_FALSE(r.ok);
    CHECK_FALSE(r.repaired);
    CHECK(r.plan.phases.empty());
    CHECK(r.repairs.empty());
    CHECK(contains(r.error, r.strict_error));
    return r.error;
  };
  CHECK(contains(reason("I could not come up with a plan."),
                 "repair failed: nothing to repair"));
  CHECK(contains(reason("```\nnot json at all\n```"),
                 "repair failed: invalid JSON even after closing brackets"));
  CHECK(contains(reason(marked("[{\"role\":\"executor\"")),
                 "repair failed: the plan is not a JSON object"));
  CHECK(contains(reason(marked(R"({"steps":[]})")),
                 "repair failed: the plan has neither"));
  CHECK(contains(reason(marked(R"({"tasks":[{"role":"wizard","task":"x"}]})")),
                 "repair failed: no valid task left"));
}

TEST_CASE("adaptive_plan: repair report json") {
  auto team = implementation_team();
  auto r = parse_adaptive_plan(
      marked(
          R"({"phases":[{"name":"build","tasks":[{"role":"coder","task":"a"},{"role":"qa","task":"b"}]})"),
      team, true);
  REQUIRE(r.ok);
  auto text = adaptive_repair_json(r);
  CHECK_EQ(text.back(), '\n');
  CHECK(text.rfind("{\n  \"reason\": \"repaired\",\n  \"phases\": [", 0) == 0);
  auto doc = nlohmann::json::parse(text);
  CHECK_EQ(doc["reason"], "repaired");
  REQUIRE_EQ(doc["phases"].size(), 1u);
  CHECK_EQ(doc["phases"][0]["name"], "build");
  CHECK_EQ(doc["phases"][0]["count"], 2);
  CHECK_EQ(doc["phases"][0]["roles"],
           nlohmann::json::array({"executor", "test-engineer"}));
  CHECK_EQ(doc["repairs"].size(), r.repairs.size());
  CHECK_EQ(doc["strictError"], r.strict_error);
}

// -- injection ----------------------------------------------------------------

TEST_CASE("adaptive_plan: slug") {
  CHECK_EQ(adaptive_slug("Security Reviewer"), "security-reviewer");
  CHECK_EQ(adaptive_slug("test_engineer!!"), "test-engineer");
  CHECK_EQ(adaptive_slug("--"), "task");
  CHECK_EQ(adaptive_slug(std::string(40, 'a')), std::string(32, 'a'));
  CHECK_EQ(adaptive_slug(std::string(31, 'a') + " b"),
           std::string(31, 'a') + "-");
}

TEST_CASE("adaptive_plan: injected tasks chain phases after assess") {
  auto team = implementation_team();
  workflow_def wf;
  wf.name = "implementation";
  wf.path = "implementation.workflow.md";
  workflow_step assess;
  assess.id = "assess";
  assess.role = "planner";
  assess.task = "{goal}";
  wf.steps = {assess};
  auto plan = build_plan(team, wf);
  REQUIRE_EQ(plan.size(), 1u);
  auto r = parse_adaptive_plan(marked(R"({"phases":[
      {"name":"Research Phase","tasks":[{"role":"explorer","task":"Explore"},
        {"role":"analyst","title":"Risk review","task":"Analyze"}]},
      {"name":"build","tasks":[{"role":"executor","task":"Build"},
        {"role":"executor","task":"Build more"}]},
      {"name":"check","tasks":[{"role":"verifier","task":"Verify"}]}]})"),
                               team, true);
  REQUIRE_MESSAGE(r.ok, r.error);
  auto extra = adaptive_tasks(r.plan, team, plan, "01_assess");
  REQUIRE_EQ(extra.size(), 5u);
  CHECK_EQ(extra[0].id, "adaptive-01-explorer");
  CHECK_EQ(extra[0].step_id, "adaptive-1-1-explorer");
  CHECK_EQ(extra[1].id, "adaptive-02-analyst");
  CHECK_EQ(extra[1].step_id, "adaptive-1-2-analyst");
  CHECK_EQ(extra[2].id, "adaptive-03-executor");
  CHECK_EQ(extra[3].step_id, "adaptive-2-2-executor");
  CHECK_EQ(extra[4].id, "adaptive-05-verifier");
  CHECK_EQ(extra[0].title, "adaptive-1-1-explorer");
  CHECK_EQ(extra[1].title, "Risk review");
  CHECK_EQ(extra[2].agent, "builder");
  CHECK_EQ(extra[2].role, "executor");
  CHECK_EQ(extra[4].agent, "verifier");
  CHECK_EQ(extra[3].task, "Build more");
  CHECK(extra[0].model.empty());
  using ids = std::vector<std::string>;
  using idx = std::vector<uint32_t>;
  for (size_t i : {0, 1}) {
    CHECK_EQ(extra[i].depends_on, ids{"01_assess"});
    CHECK_EQ(extra[i].deps, idx{0});
  }
  for (size_t i : {2, 3}) { // every phase-2 task depends on all of phase 1
    CHECK_EQ(extra[i].depends_on,
             ids{"adaptive-01-explorer", "adaptive-02-analyst"});
    CHECK_EQ(extra[i].deps, (idx{1, 2}));
  }
  CHECK_EQ(extra[4].depends_on,
           ids{"adaptive-03-executor", "adaptive-04-executor"});
  CHECK_EQ(extra[4].deps, (idx{3, 4}));
  // the appended plan is valid run-engine input: resolving it again from
  // `depends_on` yields the same indices
  auto whole = plan;
  whole.insert(whole.end(), extra.begin(), extra.end());
  resolve_deps(whole, "test");
  for (size_t i = 0; i < extra.size(); ++i)
    CHECK_EQ(whole[1 + i].deps, extra[i].deps);
  // the assess task may be named by its step id too
  CHECK_EQ(adaptive_tasks(r.plan, team, plan, "assess")[0].depends_on,
           ids{"01_assess"});
  // injecting twice or without the assess task is an error
  CHECK_THROWS_AS(adaptive_tasks(r.plan, team, whole, "01_assess"),
                  input_error);
  CHECK_THROWS_AS(adaptive_tasks(r.plan, team, plan, "02_nothing"),
                  input_error);
  // explicit indices: assess at 3, new tasks from 7
  auto shifted = adaptive_tasks(r.plan, team, "04_assess", 3, 7);
  CHECK_EQ(shifted[0].deps, idx{3});
  CHECK_EQ(shifted[2].deps, (idx{7, 8}));
}

TEST_CASE("adaptive_plan: workflow steps for the injected tasks") {
  adaptive_plan plan;
  plan.phases = {{"Research Phase", {{"explorer", "", "Explore"}}},
                 {"build", {{"executor", "", "A"}, {"test-engineer", "", "B"}}},
                 {"check", {{"verifier", "", "V"}}}};
  auto steps = adaptive_steps(plan, "assess");
  REQUIRE_EQ(steps.size(), 4u);
  CHECK_EQ(steps[0].id, "adaptive-1-1-explorer");
  CHECK_EQ(steps[0].parallel_group, "adaptive-research-phase");
  CHECK_EQ(steps[0].depends_on, std::vector<std::string>{"assess"});
  CHECK_EQ(steps[2].id, "adaptive-2-2-test-engineer");
  CHECK_EQ(steps[2].role, "test-engineer");
  CHECK_EQ(steps[2].task, "B");
  CHECK_EQ(steps[3].depends_on,
           (std::vector<std::string>{"adaptive-2-1-executor",
                                     "adaptive-2-2-test-engineer"}));
}

// -- parallel-research expansion ----------------------------------------------

TEST_CASE("research_expansion: shard counts") {
  CHECK_EQ(research_shard_count(0), 0u);
  CHECK_EQ(research_shard_count(1), 1u);
  CHECK_EQ(research_shard_count(3), 3u);
  CHECK_EQ(research_shard_count(4), 4u);
  CHECK_EQ(research_shard_count(10), 4u);
  CHECK_EQ(research_shard_count(13), 5u);
  CHECK_EQ(research_shard_count(24), 8u);
  CHECK_EQ(research_shard_count(30), 8u);
  CHECK(parallel_research_steps({}).empty());
  for (size_t p : {1, 3, 10, 30}) {
    CAPTURE(p);
    std::vector<std::string> projects;
    for (size_t i = 0; i < p; ++i)
      projects.push_back(fmt::format("Source/pi-{:02}", i));
    auto steps = parallel_research_steps(projects);
    size_t shards = p == 1 ? 1 : p == 3 ? 3 : p == 10 ? 4 : 8;
    REQUIRE_EQ(steps.size(), shards + 3);
    CHECK_EQ(steps.front().id, "discover");
    CHECK_EQ(steps.front().role, "explorer");
    CHECK(steps.front().depends_on.empty());
    CHECK(contains(steps.front().task, projects.back()));
    std::vector<std::string> shard_ids;
    size_t covered = 0;
    for (size_t i = 0; i < shards; ++i) {
      const auto& s = steps[1 + i];
      CHECK_EQ(s.id, fmt::format("explore-shard-{}", i + 1));
      CHECK_EQ(s.role, "explorer");
      CHECK_EQ(s.parallel_group, "explore");
      CHECK(s.depends_on.empty());
      REQUIRE_FALSE(s.reads.empty());
      CHECK_EQ(s.reads.front(), projects[i]); // round robin
      for (size_t k = 0; k < s.reads.size(); ++k) {
        CHECK_EQ(s.reads[k], projects[i + k * shards]);
        CHECK(contains(s.task, s.reads[k]));
      }
      CHECK(contains(s.task, "{goal}"));
      covered += s.reads.size();
      shard_ids.push_back(s.id);
    }
    CHECK_EQ(covered, p);
    const auto& synth = steps[shards + 1];
    CHECK_EQ(synth.id, "synthesize");
    CHECK_EQ(synth.role, "analyst");
    CHECK_EQ(synth.depends_on, shard_ids);
    const auto& write = steps.back();
    CHECK_EQ(write.id, "write");
    CHECK_EQ(write.role, "writer");
    CHECK_EQ(write.depends_on, std::vector<std::string>{"synthesize"});
    CHECK_EQ(write.output, "research-summary.md");
  }
}

TEST_CASE("research_expansion: discovers Source/pi-* directories") {
  namespace fs = std::filesystem;
  auto root
      = fs::temp_directory_path() / fmt::format("crew-research-{}", ::getpid());
  fs::remove_all(root);
  CHECK_FALSE(expand_parallel_research(root));
  fs::create_directories(root / "Source");
  CHECK_FALSE(expand_parallel_research(root));
  for (auto name : {"pi-b", "pi-a", "other", "pi-c"})
    fs::create_directories(root / "Source" / name);
  std::ofstream{root / "Source" / "pi-file"} << "x";
  std::error_code ec;
  fs::create_directory_symlink(root / "Source" / "pi-a",
                               root / "Source" / "pi-link", ec);
  CHECK_EQ(
      source_pi_projects(root),
      (std::vector<std::string>{"Source/pi-a", "Source/pi-b", "Source/pi-c"}));
  auto steps = expand_parallel_research(root);
  REQUIRE(steps);
  CHECK_EQ(steps->size(), 6u); // discover, 3 shards, synthesize, write
  CHECK_EQ((*steps)[3].reads, std::vector<std::string>{"Source/pi-c"});
  fs::remove_all(root);
}
