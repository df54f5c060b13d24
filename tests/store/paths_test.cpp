#include "store/paths.hpp"

#include <fstream>
#include <regex>

#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
using namespace std::chrono;

TEST_CASE("paths: new run ids follow team_<YYYYMMDDHHMMSS>_<8 hex>") {
  auto t = sys_days{year{2026} / 11 / 26} + hours{1} + minutes{15} + seconds{45}
           + milliseconds{123};
  auto id = new_run_id(t);
  CHECK(std::regex_match(id, std::regex{"team_20261126011545_[0-9a-f]{8}"}));
  CHECK(is_valid_run_id(id));
  CHECK_NE(new_run_id(t), new_run_id(t));
}

TEST_CASE("paths: run id validation rejects traversal and odd ids") {
  CHECK(is_valid_run_id("team_20261126011545_0a1b2c3d"));
  CHECK(is_valid_run_id("a"));
  CHECK(is_valid_run_id("A-b_9"));
  CHECK_FALSE(is_valid_run_id(""));
  CHECK_FALSE(is_valid_run_id("../x"));
  CHECK_FALSE(is_valid_run_id(".."));
  CHECK_FALSE(is_valid_run_id("/abs"));
  CHECK_FALSE(is_valid_run_id("a/b"));
  CHECK_FALSE(is_valid_run_id("-rf"));
  CHECK_FALSE(is_valid_run_id("a b"));
  CHECK_FALSE(is_valid_run_id(std::string(129, 'a')));
  CHECK(is_valid_run_id(std::string(128, 'a')));
  try {
    require_valid_run_id("../x");
    FAIL("no exception");
  } catch (const input_error& e) {
    CHECK_EQ(e.code(), errc::invalid_input);
    CHECK(std::string{e.what()}.find("../x") != std::string::npos);
  }
  CHECK_THROWS_AS(make_run_paths("/tmp/.crew", "/abs"), input_error);
}

TEST_CASE("paths: run paths follow pi-crew's layout") {
  auto p = make_run_paths("/p/.crew", "team_1");
  CHECK_EQ(p.state_dir, "/p/.crew/state/runs/team_1");
  CHECK_EQ(p.artifacts_dir, "/p/.crew/artifacts/team_1");
  CHECK_EQ(p.manifest(), "/p/.crew/state/runs/team_1/manifest.json");
  CHECK_EQ(p.tasks(), "/p/.crew/state/runs/team_1/tasks.json");
  CHECK_EQ(p.events(), "/p/.crew/state/runs/team_1/events.jsonl");
  CHECK_EQ(p.plan(), "/p/.crew/state/runs/team_1/plan.json");
  CHECK_EQ(p.deadletter(), "/p/.crew/state/runs/team_1/deadletter.jsonl");
  CHECK_EQ(p.lock(), "/p/.crew/state/runs/team_1/run.lock");
  CHECK_EQ(p.agents_dir(), "/p/.crew/state/runs/team_1/agents");
  CHECK_EQ(p.cancel_request().parent_path(), p.state_dir);
}

TEST_CASE("paths: list_run_ids lists valid run directories sorted") {
  test::temp_dir tmp;
  CHECK(list_run_ids(tmp.path).empty());
  auto runs = tmp.path / "state" / "runs";
  std::filesystem::create_directories(runs / "team_b");
  std::filesystem::create_directories(runs / "team_a");
  std::filesystem::create_directories(runs / "bad name");
  { std::ofstream{runs / "team_file"} << "x"; }
  CHECK_EQ(list_run_ids(tmp.path),
           std::vector<std::string>{"team_a", "team_b"});
}
