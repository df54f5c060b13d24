#include "runtime/operations/service.hpp"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "runtime/scheduling/run_engine.hpp"
#include "store/replay.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
namespace fs = std::filesystem;

namespace {

/// A temp project (with `.crew/`) and an empty user config root.
struct project {
  test::temp_dir dir{"crew-service"};
  fs::path crew_root;

  project() {
    crew_root = dir.path / ".crew";
    fs::create_directories(crew_root);
    // keep the user's own config and resources out of the tests
    ::setenv("PI_TEAMS_HOME", (dir.path / "home").c_str(), 1);
  }

  project_context ctx() const {
    return load_project(dir.path, {});
  }

  /// Every path under the project, for "nothing was written" checks.
  std::vector<std::string> tree() const {
    std::vector<std::string> out;
    for (auto& e : fs::recursive_directory_iterator(dir.path))
      out.push_back(e.path().string());
    return out;
  }
};

template <class F>
input_error catch_input_error(F&& f) {
  try {
    f();
  } catch (const input_error& e) {
    return e;
  }
  FAIL("no input_error thrown");
  return input_error{"unreachable"};
}

/// Appends an engine's pending events to the run's log.
void flush_to(const run_setup& setup, run_engine& eng) {
  test::append_to(setup.paths.events(), eng.take_events());
  eng.on_durable(eng.last_seq());
}

/// Runs a created run to its end with a plain engine; `fail_first` makes the
/// first task fail. Returns the final run status.
run_status run_to_end(const run_setup& setup, bool fail_first) {
  run_engine eng{setup.manifest.run_id, setup.plan, 1, setup.engine};
  eng.start("Executing team workflow.", false);
  for (int guard = 0; guard < 10000 && !eng.finished(); ++guard) {
    std::vector<uint32_t> out;
    eng.next_dispatch(out);
    for (auto i : out) {
      attempt_result r;
      r.index = i;
      r.attempt = eng.tasks()[i].attempt;
      r.ok = !(fail_first && i == 0);
      r.exit_code = r.ok ? 0 : 1;
      r.error = r.ok ? "" : "boom";
      eng.on_result(r);
    }
    flush_to(setup, eng);
  }
  REQUIRE(eng.finished());
  return eng.status();
}

} // namespace

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

TEST_CASE("service: load_run rejects path-like and unknown ids") {
  project p;
  auto e = catch_input_error([&] { load_run(p.crew_root, "../x"); });
  CHECK_EQ(e.code(), errc::invalid_input);
  e = catch_input_error([&] { load_run(p.crew_root, "/etc"); });
  CHECK_EQ(e.code(), errc::invalid_input);
  e = catch_input_error(
    [&] { load_run(p.crew_root, "team_20990101000000_deadbeef"); });
  CHECK_EQ(e.code(), errc::not_found);
  CHECK_NE(std::string{e.what()}.find("team_20990101000000_deadbeef"),
           std::string::npos);
}

TEST_CASE("service: prepare_resume refuses a completed run and an owned run") {
  project p;
  auto ctx = p.ctx();
  auto pr = plan_run(ctx, "default", "");
  auto setup = prepare_run(ctx, pr, "goal");
  auto run_id = setup->manifest.run_id;
  // still owned by this process (the setup holds the lock)
  auto e = catch_input_error([&] { prepare_resume(ctx, run_id); });
  CHECK_NE(std::string{e.what()}.find(run_id), std::string::npos);
  CHECK_EQ(run_to_end(*setup, false), run_status::completed);
  setup.reset();
  e = catch_input_error([&] { prepare_resume(ctx, run_id); });
  CHECK_NE(std::string{e.what()}.find("already completed"), std::string::npos);
  CHECK_FALSE(fs::exists(make_run_paths(p.crew_root, run_id).lock()));
}

TEST_CASE("service: prepare_resume of a failed run loads its states") {
  project p;
  auto ctx = p.ctx();
  auto pr = plan_run(ctx, "default", "");
  auto setup = prepare_run(ctx, pr, "goal");
  auto run_id = setup->manifest.run_id;
  CHECK_EQ(run_to_end(*setup, true), run_status::failed);
  setup.reset();
  auto resumed = prepare_resume(ctx, run_id);
  CHECK(resumed->resume);
  REQUIRE_EQ(resumed->checkpoint.tasks.size(), pr.plan.size());
  CHECK_EQ(resumed->checkpoint.tasks[0].status, task_status::failed);
  CHECK_EQ(checkpoint_error(resumed->checkpoint, 0), "boom");
  CHECK(fs::exists(resumed->paths.lock()));
}

TEST_CASE("service: cancel_run of an ownerless running run cancels it in the "
          "log") {
  project p;
  auto ctx = p.ctx();
  auto pr = plan_run(ctx, "default", "");
  auto setup = prepare_run(ctx, pr, "goal");
  auto run_id = setup->manifest.run_id;
  {
    // the run started, its first task is running, then the process "died"
    run_engine eng{run_id, setup->plan, 1, setup->engine};
    eng.start("Executing team workflow.", false);
    std::vector<uint32_t> out;
    eng.next_dispatch(out);
    REQUIRE_FALSE(out.empty());
    flush_to(*setup, eng);
  }
  auto plan = setup->plan;
  setup.reset(); // releases the lock: no live owner
  auto before = load_run(p.crew_root, run_id);
  CHECK_EQ(before.replay.status, run_status::running);
  CHECK_FALSE(before.owner_alive);
  CHECK_EQ(cancel_run(p.crew_root, run_id, 1000),
           cancel_outcome::cancelled_offline);
  auto paths = make_run_paths(p.crew_root, run_id);
  auto rs = replay_log(paths.events(), plan);
  CHECK(rs.violations.empty());
  CHECK(rs.seq_contiguous);
  CHECK_EQ(rs.status, run_status::cancelled);
  for (auto& t : rs.tasks)
    CHECK_EQ(t.status, task_status::cancelled);
  auto view = load_run(p.crew_root, run_id);
  CHECK_EQ(view.manifest.status, run_status::cancelled);
  CHECK_EQ(view.manifest.seq, rs.last_seq);
  CHECK_FALSE(fs::exists(paths.lock()));
  CHECK_EQ(cancel_run(p.crew_root, run_id, 1000),
           cancel_outcome::already_terminal);
}

TEST_CASE("service: prepare_loadtest validates and creates a sim run") {
  test::temp_dir dir{"crew-loadtest"};
  auto root = dir.path / ".crew";
  loadtest_options bad;
  bad.tasks = 0;
  CHECK_THROWS_AS(prepare_loadtest(root, bad), input_error);
  bad = {};
  bad.fail_rate = 1.5;
  CHECK_THROWS_AS(prepare_loadtest(root, bad), input_error);
  CHECK_FALSE(fs::exists(root / "state"));
  loadtest_options opts;
  opts.tasks = 10;
  opts.shape = graph_shape::chain;
  opts.concurrency = 3;
  auto setup = prepare_loadtest(root, opts);
  CHECK_EQ(setup->backend, backend_kind::sim);
  CHECK_EQ(setup->plan.size(), 10u);
  CHECK_EQ(setup->engine.max_concurrent, 3u);
  auto view = load_run(root, setup->manifest.run_id);
  CHECK_EQ(view.replay.last_seq, 1u);
  CHECK_EQ(view.plan.size(), 10u);
  CHECK_EQ(view.manifest.runtime_mode, "sim");
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
