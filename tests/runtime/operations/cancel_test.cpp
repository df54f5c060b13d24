// cancel_run (runtime/operations/cancel.hpp).

#include "runtime/operations/cancel.hpp"

#include <filesystem>
#include <vector>

#include <doctest/doctest.h>

#include "runtime/operations/create.hpp"
#include "runtime/operations/inspect.hpp"
#include "runtime/scheduling/run_engine.hpp"
#include "store/paths.hpp"
#include "store/replay.hpp"
#include "tests/runtime/operations/operations_fixture.hpp"

using namespace crew;
using crew::test::project;
using crew::test::flush_to;
namespace fs = std::filesystem;

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
