// prepare_resume (runtime/operations/resume.hpp).

#include "runtime/operations/resume.hpp"

#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "runtime/operations/create.hpp"
#include "store/checkpoint.hpp"
#include "store/paths.hpp"
#include "tests/runtime/operations/operations_fixture.hpp"

using namespace crew;
using crew::test::project;
using crew::test::catch_input_error;
using crew::test::run_to_end;
namespace fs = std::filesystem;

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
