#include "store/snapshot.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"

using namespace crew;

namespace {

std::vector<planned_task> sample_plan() {
  std::vector<planned_task> plan(3);
  plan[0] = planned_task{"01_explore",        "explore", "explorer",
                         "explorer",          "explore", "",
                         "Look \"around\"\n", {},        {}};
  plan[1] = planned_task{"02_build",     "build",     "builder",
                         "executor",     "build",     "sonnet",
                         "Build {goal}", {"explore"}, {}};
  plan[2] = planned_task{"adaptive-01-review",
                         "adaptive-1-1-review",
                         "reviewer",
                         "reviewer",
                         "Review",
                         "",
                         "Review it",
                         {"02_build", "explore"},
                         {}};
  return plan;
}

} // namespace

TEST_CASE("snapshot: manifest round trips in pi-crew's shape") {
  run_manifest m;
  m.run_id = "team_20261126011545_0a1b2c3d";
  m.team = "default";
  m.workflow = "default";
  m.goal = "ship \"it\"";
  m.status = run_status::running;
  m.created_at = "2026-11-26T01:15:45.123Z";
  m.updated_at = "2026-11-26T01:15:46.000Z";
  m.cwd = "/p";
  m.state_root = "/p/.crew/state/runs/x";
  m.artifacts_root = "/p/.crew/artifacts/x";
  m.tasks_path = "/p/.crew/state/runs/x/tasks.json";
  m.events_path = "/p/.crew/state/runs/x/events.jsonl";
  m.summary = "Running";
  m.runtime_mode = "child-process";
  m.owner_pid = 4242;
  m.owner_start = 123456789;
  m.seq = 77;
  auto text = manifest_json(m);
  CHECK(text.starts_with("{\n  \"schemaVersion\": 1,\n  \"runId\": "));
  CHECK(text.ends_with("}\n"));
  auto j = nlohmann::ordered_json::parse(text);
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items())
    keys.push_back(k);
  CHECK_EQ(keys,
           std::vector<std::string>{
               "schemaVersion", "runId", "team", "workflow", "goal", "status",
               "workspaceMode", "createdAt", "updatedAt", "cwd", "stateRoot",
               "artifactsRoot", "tasksPath", "eventsPath", "artifacts",
               "summary", "snapshotSeq", "runtime", "owner"});
  auto back = parse_manifest(text, "manifest.json");
  CHECK_EQ(back.run_id, m.run_id);
  CHECK_EQ(back.team, m.team);
  CHECK_EQ(back.workflow, m.workflow);
  CHECK_EQ(back.goal, m.goal);
  CHECK_EQ(back.status, m.status);
  CHECK_EQ(back.workspace_mode, "single");
  CHECK_EQ(back.created_at, m.created_at);
  CHECK_EQ(back.updated_at, m.updated_at);
  CHECK_EQ(back.cwd, m.cwd);
  CHECK_EQ(back.state_root, m.state_root);
  CHECK_EQ(back.artifacts_root, m.artifacts_root);
  CHECK_EQ(back.tasks_path, m.tasks_path);
  CHECK_EQ(back.events_path, m.events_path);
  CHECK_EQ(back.summary, m.summary);
  CHECK_EQ(back.runtime_mode, m.runtime_mode);
  CHECK_EQ(back.owner_pid, m.owner_pid);
  CHECK_EQ(back.owner_start, m.owner_start);
  CHECK_EQ(back.seq, m.seq);
}

TEST_CASE("snapshot: a bad manifest is corrupt_log naming the file") {
  auto expect = [](std::string_view json) {
    try {
      parse_manifest(json, "/x/manifest.json");
      FAIL("no exception");
    } catch (const input_error& e) {
      CHECK_EQ(e.code(), errc::corrupt_log);
      CHECK(std::string{e.what()}.find("/x/manifest.json")
            != std::string::npos);
    }
  };
  expect("{");
  expect(R"({"runId":"a","status":"sleeping"})");
  expect(R"({"status":"queued"})");
  expect("[]");
}

// Found by fuzz/snapshot_fuzz.cpp: get<uint64_t>() of snapshotSeq 1e300
// cast a double beyond the type's range (undefined behaviour, UBSan).
TEST_CASE("snapshot: manifest numbers must be whole and in range") {
  auto parse = [](std::string_view fields) {
    return parse_manifest(R"({"runId":"a","status":"queued",)" + std::string{fields} + "}",
                          "/x/manifest.json");
  };
  for (auto bad : {R"("snapshotSeq":1e300)", R"("snapshotSeq":-1)",
                   R"("snapshotSeq":2.5)", R"("snapshotSeq":"7")",
                   R"("snapshotSeq":18446744073709551616.0)",
                   R"("owner":{"pid":-1e300})", R"("owner":{"pid":9223372036854775808})",
                   R"("owner":{"startTime":1e20})"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(parse(bad), doctest::Contains("/x/manifest.json: bad field"),
                         input_error);
  }
  auto m = parse(R"("snapshotSeq":12.0,"owner":{"pid":-1,"startTime":18446744073709551615})");
  CHECK_EQ(m.seq, 12u);
  CHECK_EQ(m.owner_pid, -1);
  CHECK_EQ(m.owner_start, UINT64_MAX);
}

TEST_CASE("snapshot: plan round trips and recomputes deps") {
  auto plan = sample_plan();
  auto text = plan_json(plan);
  auto back = parse_plan(text, "plan.json");
  REQUIRE_EQ(back.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    CHECK_EQ(back[i].id, plan[i].id);
    CHECK_EQ(back[i].step_id, plan[i].step_id);
    CHECK_EQ(back[i].role, plan[i].role);
    CHECK_EQ(back[i].agent, plan[i].agent);
    CHECK_EQ(back[i].title, plan[i].title);
    CHECK_EQ(back[i].model, plan[i].model);
    CHECK_EQ(back[i].task, plan[i].task);
    CHECK_EQ(back[i].depends_on, plan[i].depends_on);
  }
  CHECK(back[0].deps.empty());
  CHECK_EQ(back[1].deps, std::vector<uint32_t>{0});
  CHECK_EQ(back[2].deps, std::vector<uint32_t>{1, 0});
  // unknown dependency
  plan[0].depends_on = {"nowhere"};
  try {
    parse_plan(plan_json(plan), "/r/plan.json");
    FAIL("no exception");
  } catch (const input_error& e) {
    CHECK_EQ(e.code(), errc::corrupt_log);
    CHECK(std::string{e.what()}.find("/r/plan.json") != std::string::npos);
    CHECK(std::string{e.what()}.find("nowhere") != std::string::npos);
  }
}

TEST_CASE("snapshot: tasks.json has pi-crew's fields and round trips") {
  auto plan = sample_plan();
  resolve_deps(plan, "test");
  std::vector<task_state> st(3);
  st[0].status = task_status::completed;
  st[0].started_at = "2026-11-26T01:00:00.000Z";
  st[0].finished_at = "2026-11-26T01:00:01.000Z";
  st[0].exit_code = 0;
  st[0].has_exit_code = true;
  st[0].attempts
      = {{"2026-11-26T00:59:00.000Z", "2026-11-26T00:59:30.000Z", "boom\n"},
         {"2026-11-26T01:00:00.000Z", "2026-11-26T01:00:01.000Z", ""}};
  st[1].status = task_status::running;
  st[1].started_at = "2026-11-26T01:00:02.000Z";
  st[1].attempts = {{"2026-11-26T01:00:02.000Z", "", ""}};
  auto text = tasks_json("team_1", plan, st, "/p");
  auto j = nlohmann::json::parse(text);
  REQUIRE(j.is_array());
  REQUIRE_EQ(j.size(), 3u);
  CHECK_EQ(j[0]["id"], "01_explore");
  CHECK_EQ(j[0]["runId"], "team_1");
  CHECK_EQ(j[0]["stepId"], "explore");
  CHECK_EQ(j[0]["status"], "completed");
  CHECK_EQ(j[0]["cwd"], "/p");
  CHECK_EQ(j[0]["exitCode"], 0);
  CHECK_EQ(j[0]["attempts"][0]["error"], "boom\n");
  CHECK_EQ(j[0]["graph"]["queue"], "done");
  CHECK_EQ(j[1]["dependsOn"], nlohmann::json::array({"explore"}));
  CHECK_EQ(j[1]["model"], "sonnet");
  CHECK(j[1]["exitCode"].is_null());
  CHECK_EQ(j[1]["graph"]["queue"], "running");
  CHECK_EQ(j[2]["graph"]["dependencies"],
           nlohmann::json::array({"02_build", "01_explore"}));
  CHECK_EQ(j[2]["graph"]["queue"], "blocked");
  CHECK_EQ(j[2]["attempts"], nlohmann::json::array());
  // the layout is JSON.stringify(x, null, 2)
  CHECK_EQ(text, nlohmann::ordered_json::parse(text).dump(2) + "\n");
  auto back = parse_tasks(text, plan, "tasks.json");
  REQUIRE_EQ(back.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    CHECK_EQ(back[i].status, st[i].status);
    CHECK_EQ(back[i].started_at, st[i].started_at);
    CHECK_EQ(back[i].finished_at, st[i].finished_at);
    CHECK_EQ(back[i].error, st[i].error);
    CHECK_EQ(back[i].has_exit_code, st[i].has_exit_code);
    CHECK_EQ(back[i].exit_code, st[i].exit_code);
    REQUIRE_EQ(back[i].attempts.size(), st[i].attempts.size());
    for (size_t k = 0; k < st[i].attempts.size(); ++k) {
      CHECK_EQ(back[i].attempts[k].started_at, st[i].attempts[k].started_at);
      CHECK_EQ(back[i].attempts[k].ended_at, st[i].attempts[k].ended_at);
      CHECK_EQ(back[i].attempts[k].error, st[i].attempts[k].error);
    }
  }
}
