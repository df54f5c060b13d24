// plan_run and prepare_run (runtime/operations/create.hpp).

#include "runtime/operations/create.hpp"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "runtime/operations/inspect.hpp"
#include "store/paths.hpp"
#include "store/replay.hpp"
#include "tests/runtime/operations/operations_fixture.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
using crew::test::project;
using crew::test::catch_input_error;
namespace fs = std::filesystem;

TEST_CASE("service: plan_run of an unknown team or workflow names it and "
          "writes nothing") {
  project p;
  auto ctx = p.ctx();
  auto before = p.tree();
  auto e = catch_input_error([&] { plan_run(ctx, "no-such-team", ""); });
  CHECK_EQ(e.code(), errc::not_found);
  CHECK_NE(std::string{e.what()}.find("no-such-team"), std::string::npos);
  e = catch_input_error([&] { plan_run(ctx, "default", "no-such-flow"); });
  CHECK_EQ(e.code(), errc::not_found);
  CHECK_NE(std::string{e.what()}.find("no-such-flow"), std::string::npos);
  CHECK_EQ(p.tree(), before);
  CHECK_FALSE(fs::exists(p.crew_root / "state"));
}

TEST_CASE("service: plan_run resolves the team's default workflow") {
  project p;
  auto pr = plan_run(p.ctx(), "default", "");
  CHECK_EQ(pr.team.name, "default");
  CHECK_FALSE(pr.workflow.name.empty());
  REQUIRE_FALSE(pr.plan.empty());
  CHECK_EQ(pr.plan[0].id.substr(0, 3), "01_");
  for (uint32_t i = 0; i < pr.plan.size(); ++i)
    for (auto d : pr.plan[i].deps)
      CHECK_LT(d, i);
  CHECK_GE(pr.concurrency.max_concurrent, 1u);
  CHECK_FALSE(pr.concurrency.reason.empty());
}

TEST_CASE("service: prepare_run creates manifest, plan, tasks and events") {
  project p;
  auto ctx = p.ctx();
  auto pr = plan_run(ctx, "default", "");
  CHECK_THROWS_AS(prepare_run(ctx, pr, ""), input_error);
  CHECK_THROWS_WITH_AS(prepare_run(ctx, pr, "caf\xE9"),
                       "--goal: not valid UTF-8 (byte 0xE9 at offset 3)",
                       input_error);
  CHECK_FALSE(fs::exists(p.crew_root / "state"));
  auto setup = prepare_run(ctx, pr, "write the tests");
  auto& paths = setup->paths;
  CHECK(fs::exists(paths.manifest()));
  CHECK(fs::exists(paths.plan()));
  CHECK(fs::exists(paths.tasks()));
  CHECK(fs::exists(paths.events()));
  CHECK(fs::exists(paths.lock()));
  CHECK_EQ(test::slurp(paths.artifacts_dir / "goal.md"), "write the tests\n");
  CHECK(is_valid_run_id(setup->manifest.run_id));
  CHECK_EQ(setup->plan.size(), pr.plan.size());
  CHECK_EQ(setup->engine.max_concurrent, pr.concurrency.max_concurrent);
  std::vector<std::pair<uint64_t, std::string>> evs;
  for_each_event(paths.events(), [&](const event_view& ev) {
    evs.emplace_back(ev.seq, std::string{ev.type});
    CHECK_EQ(ev.run_id, setup->manifest.run_id);
  });
  REQUIRE_EQ(evs.size(), 1u);
  CHECK_EQ(evs[0].first, 1u);
  CHECK_EQ(evs[0].second, "run.created");
  auto view = load_run(p.crew_root, setup->manifest.run_id);
  CHECK_EQ(view.manifest.run_id, setup->manifest.run_id);
  CHECK_EQ(view.manifest.goal, "write the tests");
  CHECK_EQ(view.manifest.team, "default");
  CHECK_EQ(view.manifest.seq, 1u);
  CHECK_EQ(view.plan.size(), pr.plan.size());
  CHECK_EQ(view.replay.last_seq, 1u);
  CHECK_EQ(view.replay.status, run_status::queued);
  CHECK(view.owner_alive); // this process holds the lock
  for (auto& t : view.replay.tasks)
    CHECK_EQ(t.status, task_status::queued);
  auto lock = paths.lock();
  setup.reset();
  CHECK_FALSE(fs::exists(lock));
  CHECK_FALSE(load_run(p.crew_root, view.manifest.run_id).owner_alive);
}

TEST_CASE("service: the parallel-research workflow expands over Source/pi-* "
          "projects, else keeps its own steps") {
  project p;
  auto plain = plan_run(p.ctx(), "parallel-research", "");
  std::vector<std::string> own;
  for (auto& t : plain.plan)
    own.push_back(t.step_id);
  for (auto name : {"pi-a", "pi-b", "pi-c", "pi-d", "pi-e"})
    fs::create_directories(p.dir.path / "Source" / name);
  auto pr = plan_run(p.ctx(), "parallel-research", "");
  std::vector<std::string> steps;
  for (auto& t : pr.plan)
    steps.push_back(t.step_id);
  // 5 projects: min(8, max(4, ceil(5/3))) = 4 shards
  CHECK_EQ(steps, std::vector<std::string>{"discover", "explore-shard-1",
                                           "explore-shard-2", "explore-shard-3",
                                           "explore-shard-4", "synthesize", "write"});
  CHECK_NE(steps, own);
  auto& synth = pr.plan[5];
  CHECK_EQ(synth.deps, std::vector<uint32_t>{1, 2, 3, 4});
  CHECK_EQ(synth.role, "analyst");
}
