// Adaptive plans in running runs (workflow `implementation`, inventory
// §4.9): the planner's phases become tasks of the same run, in order; an
// output without a plan ends the run blocked; a repaired plan is recorded.
// Command-backed agents make it hermetic: the planner prints plan.txt.

#include <doctest/doctest.h>

#include "tests/integration/support.hpp"

using namespace crew::it;

namespace {

/// An `implementation` team and workflow of the project's own: the planner
/// prints plan.txt, the other roles print their task id.
void adaptive_project(project& p, const std::string& plan_text) {
  p.write("plan.txt", plan_text);
  p.agent("plan-printer", "cat >/dev/null; cat plan.txt");
  p.agent("doer", "cat >/dev/null; echo done by $CREW_TASK_ID");
  p.team("implementation",
         {{"planner", "plan-printer"}, {"executor", "doer"}, {"reviewer", "doer"}},
         "implementation", 3);
  p.workflow("implementation", {{"assess", "planner", ""}});
}

const char* two_phase_plan = R"(Here is the plan.
ADAPTIVE_PLAN_JSON_START
{"phases": [
  {"name": "build", "tasks": [
    {"role": "executor", "title": "API", "task": "Implement the API"},
    {"role": "executor", "title": "CLI", "task": "Implement the CLI"}]},
  {"name": "check", "tasks": [
    {"role": "reviewer", "task": "Review both changes"}]}
]}
ADAPTIVE_PLAN_JSON_END
)";

std::vector<json> of_type(const std::vector<json>& events, const std::string& type) {
  std::vector<json> out;
  for (auto& e : events)
    if (e["type"] == type)
      out.push_back(e);
  return out;
}

uint64_t seq_of(const std::vector<json>& events, const std::string& type,
                const std::string& task) {
  for (auto& e : events)
    if (e["type"] == type && e.value("taskId", "") == task)
      return e["metadata"]["seq"].get<uint64_t>();
  return 0;
}

} // namespace

TEST_CASE("adaptive: the planner's phases join the run and run in order") {
  project p;
  adaptive_project(p, two_phase_plan);
  auto r = p.crew({"run", "--goal", "ship it", "--team", "implementation", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto id = r.last_json()["runId"].get<std::string>();
  CHECK(r.last_json()["status"] == "completed");

  auto st = p.status(id);
  std::vector<std::string> ids;
  for (auto& t : st["tasks"]) {
    ids.push_back(t["id"]);
    CHECK_MESSAGE(t["status"] == "completed", t["id"]);
  }
  CHECK(ids == std::vector<std::string>{"01_assess", "adaptive-01-executor",
                                        "adaptive-02-executor",
                                        "adaptive-03-reviewer"});
  auto events = p.events(id);
  auto injected = of_type(events, "adaptive.plan_injected");
  REQUIRE(injected.size() == 1);
  auto& phases = injected[0]["data"]["phases"];
  REQUIRE(phases.size() == 2);
  CHECK(phases[0]["name"] == "build");
  CHECK(phases[0]["count"] == 2);
  CHECK(phases[1]["roles"] == json::array({"reviewer"}));
  // after the planner's durable completion, before any adaptive task
  CHECK(injected[0]["metadata"]["seq"].get<uint64_t>()
        > seq_of(events, "task.completed", "01_assess"));
  CHECK(injected[0]["metadata"]["seq"].get<uint64_t>()
        < seq_of(events, "task.started", "adaptive-01-executor"));
  // phase 2 starts only after every task of phase 1 completed
  auto review = seq_of(events, "task.started", "adaptive-03-reviewer");
  CHECK(review > seq_of(events, "task.completed", "adaptive-01-executor"));
  CHECK(review > seq_of(events, "task.completed", "adaptive-02-executor"));
  // the workers got the planner's task text and ran as the role's agent
  auto prompt = read_text(p.artifacts(id) / "prompts" / "adaptive-02-executor.md");
  CHECK(prompt.find("Implement the CLI") != std::string::npos);
  CHECK(read_text(p.artifacts(id) / "results" / "adaptive-03-reviewer.txt")
        == "done by adaptive-03-reviewer\n");
  // plan.json holds the grown plan; the log alone agrees with every file
  auto plan = json::parse(read_text(p.run_dir(id) / "plan.json"));
  REQUIRE(plan.size() == 4);
  CHECK(plan[3]["dependsOn"]
        == json::array({"adaptive-01-executor", "adaptive-02-executor"}));
  auto v = p.crew({"verify", id});
  CHECK_MESSAGE(v.code == 0, v);
}

TEST_CASE("adaptive: a planner output without a plan ends the run blocked") {
  project p;
  adaptive_project(p, "I could not come up with anything.\n");
  auto r = p.crew({"run", "--goal", "g", "--team", "implementation", "--json"});
  CHECK(r.code != 0);
  auto id = r.last_json()["runId"].get<std::string>();
  auto st = p.status(id);
  CHECK(st["manifest"]["status"] == "blocked");
  CHECK(st["manifest"]["summary"]
        == "Adaptive planner did not produce a valid subagent plan.");
  CHECK(st["tasks"].size() == 1);
  auto events = p.events(id);
  CHECK(of_type(events, "adaptive.plan_repair_failed").size() == 1);
  auto missing = of_type(events, "adaptive.plan_missing");
  REQUIRE(missing.size() == 1);
  // says what is wrong and where the output is
  auto reason = missing[0]["data"]["reason"].get<std::string>();
  CHECK_MESSAGE(reason.find("01_assess.txt") != std::string::npos, reason);
  CHECK(of_type(events, "adaptive.plan_injected").empty());
  CHECK(p.crew({"verify", id}).code == 0);

  // a corrected planner result is read again by a resume
  write_text(p.artifacts(id) / "results" / "01_assess.txt", two_phase_plan);
  auto resumed = p.crew({"resume", id, "--json"});
  REQUIRE_MESSAGE(resumed.code == 0, resumed);
  CHECK(resumed.last_json()["status"] == "completed");
  CHECK(p.status(id)["tasks"].size() == 4);
  CHECK(p.crew({"verify", id}).code == 0);
}

TEST_CASE("adaptive: a plan that needs repair is repaired and recorded") {
  project p;
  // an alias role (coder -> executor), an unknown role, no closing braces
  adaptive_project(p, "```json\n{\"phases\": [{\"name\": \"work\", \"tasks\": ["
                      "{\"role\": \"coder\", \"task\": \"Write it\"},"
                      "{\"role\": \"astronaut\", \"task\": \"Fly\"}]\n```\n");
  auto r = p.crew({"run", "--goal", "g", "--team", "implementation", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto id = r.last_json()["runId"].get<std::string>();
  auto st = p.status(id);
  REQUIRE(st["tasks"].size() == 2);
  CHECK(st["tasks"][1]["id"] == "adaptive-01-executor");
  CHECK(st["tasks"][1]["status"] == "completed");
  auto events = p.events(id);
  auto repaired = of_type(events, "adaptive.plan_repaired");
  REQUIRE(repaired.size() == 1);
  CHECK_FALSE(repaired[0]["data"]["repairs"].empty());
  auto meta = json::parse(read_text(p.artifacts(id) / "metadata" / "adaptive-repair.json"));
  CHECK(meta["phases"][0]["roles"] == json::array({"executor"}));
}

TEST_CASE("adaptive: PI_CREW_ADAPTIVE_REPAIR=0 refuses a plan that needs repair") {
  project p;
  adaptive_project(p, "```json\n{\"tasks\": [{\"role\": \"coder\", \"task\": \"Write it\"}]}\n```\n");
  auto r = p.crew({"run", "--goal", "g", "--team", "implementation", "--json"}, 30000,
                  {"PI_CREW_ADAPTIVE_REPAIR=0"});
  auto id = r.last_json()["runId"].get<std::string>();
  CHECK(p.status(id)["manifest"]["status"] == "blocked");
  auto events = p.events(id);
  CHECK(of_type(events, "adaptive.plan_repair_failed").empty());
  auto missing = of_type(events, "adaptive.plan_missing");
  REQUIRE(missing.size() == 1);
  CHECK(missing[0]["data"]["reason"].get<std::string>().find("coder")
        != std::string::npos);
}

TEST_CASE("adaptive: pi-crew's adaptive-plan mock drives the built-in "
          "implementation team, three tasks at a time") {
  project p;
  auto r = p.crew({"run", "--goal", "g", "--team", "implementation", "--json"}, 60000,
                  {"PI_TEAMS_MOCK_CHILD_PI=adaptive-plan"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto id = r.last_json()["runId"].get<std::string>();
  auto st = p.status(id);
  CHECK(st["tasks"].size() > 1);
  for (auto& t : st["tasks"])
    CHECK_MESSAGE(t["status"] == "completed", t["id"]);
  int running = 0, most = 0;
  for (auto& e : p.events(id)) {
    if (e["type"] == "task.started")
      most = std::max(most, ++running);
    else if (e["type"] == "task.completed")
      --running;
  }
  CHECK(most == 3); // the team's maxConcurrency
  CHECK(p.crew({"verify", id}).code == 0);
}
