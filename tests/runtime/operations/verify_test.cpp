#include "runtime/operations/verify.hpp"

#include <cstdlib>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "runtime/operations/create.hpp"
#include "runtime/operations/inspect.hpp"
#include "runtime/operations/project.hpp"
#include "runtime/operations/resume.hpp"
#include "runtime/scheduling/run_engine.hpp"
#include "store/atomic_file.hpp"
#include "store/checkpoint.hpp"
#include "store/event_log.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
namespace fs = std::filesystem;

namespace {

constexpr const char* final_check = "completed only when every task completed, "
                                    "before any cancel or expiry";

/// A created run of the builtin default team in a fresh project.
struct created_run {
  test::temp_dir dir{"crew-verify"};
  project_context ctx;
  run_setup_ptr setup;
  std::string id;
  fs::path events;

  created_run() {
    fs::create_directories(dir.path / ".crew");
    ::setenv("PI_TEAMS_HOME", (dir.path / "home").c_str(), 1);
    ctx = load_project(dir.path, {});
    setup = prepare_run(ctx, plan_run(ctx, "default", ""), "goal");
    id = setup->manifest.run_id;
    events = setup->paths.events();
  }

  fs::path log() const {
    return events;
  }

  /// Writes an engine's events to the log: they are durable.
  void write(run_engine& eng) const {
    test::append_to(log(), eng.take_events());
    eng.on_durable(eng.last_seq());
  }

  /// The final status check of `crew verify`.
  verify_check check() const {
    for (auto& c : verify_run(ctx.crew_root, id).checks)
      if (c.name == final_check)
        return c;
    return {"missing", false, {}};
  }
};

std::string joined(const verify_check& c) {
  std::string out;
  for (auto& p : c.problems)
    out += p + "\n";
  return out;
}

} // namespace

TEST_CASE("verify: a completed run with a cancelled task breaks the final "
          "status check") {
  created_run r;
  run_engine eng{r.id, r.setup->plan, 1, r.setup->engine};
  eng.start("Executing team workflow.", false);
  std::vector<uint32_t> out;
  eng.next_dispatch(out);
  REQUIRE_EQ(eng.cancel("Run cancelled by user request.").size(), out.size());
  r.write(eng);
  for (auto i : out) {
    attempt_result res;
    res.index = i;
    res.attempt = 1;
    res.ok = true;
    eng.on_result(res);
  }
  r.write(eng);
  r.write(eng);
  REQUIRE(eng.finished());
  REQUIRE_EQ(eng.status(), run_status::cancelled);
  CHECK_MESSAGE(r.check().ok, joined(r.check()));
  // What finding 1 produced: the same log ending `run.completed`.
  auto text = read_file(r.log());
  auto at = text.rfind(R"("type":"run.cancelled")");
  REQUIRE_NE(at, std::string::npos);
  text.replace(at, 22, R"("type":"run.completed")");
  write_file_atomic(r.log(), text);
  auto c = r.check();
  CHECK_FALSE(c.ok);
  CHECK_NE(joined(c).find("run is completed but task '" + r.setup->plan[0].id
                          + "' is cancelled"),
           std::string::npos);
}

TEST_CASE("verify: a task completed after a cancel intent cannot leave the run "
          "completed") {
  created_run r;
  auto& plan = r.setup->plan;
  std::string text = read_file(r.log()); // run.created
  uint64_t seq = 1;
  auto add = [&](std::string_view type, std::string_view task) {
    append_event_line(text, event_fields{type, r.id, task, {}, {}, ++seq,
                                         std::chrono::system_clock::now()});
  };
  add("run.running", {});
  for (size_t i = 0; i < plan.size(); ++i) {
    add("task.started", plan[i].id);
    if (i + 1 == plan.size())
      add("crew.run.cancel_requested", {});
    add("task.completed", plan[i].id);
  }
  add("run.completed", {});
  write_file_atomic(r.log(), text);
  auto c = r.check();
  CHECK_FALSE(c.ok);
  CHECK_NE(joined(c).find("task '" + plan.back().id + "' completed at seq"),
           std::string::npos);
  CHECK_NE(joined(c).find("after the crew.run.cancel_requested"), std::string::npos);
}

TEST_CASE("verify: recovery of a run whose owner died while cancelling ends "
          "it cancelled, from a full replay or from a checkpoint") {
  for (bool from_checkpoint : {false, true}) {
    CAPTURE(from_checkpoint);
    created_run r;
    auto plan = r.setup->plan;
    {
      run_engine eng{r.id, plan, 1, r.setup->engine};
      eng.start("Executing team workflow.", false);
      std::vector<uint32_t> out;
      eng.next_dispatch(out);
      REQUIRE_FALSE(out.empty());
      r.write(eng);
      if (from_checkpoint)
        write_file_atomic(r.setup->paths.checkpoint(),
                          checkpoint_bin(eng.checkpoint()));
      REQUIRE_FALSE(eng.cancel("Run cancelled by user request.").empty());
      r.write(eng); // then the owner dies in the kill grace
    }
    r.setup.reset(); // no live owner
    auto setup = prepare_resume(r.ctx, r.id, resume_mode::recover);
    CHECK_EQ(setup->checkpoint_seq != 0, from_checkpoint);
    REQUIRE(setup->checkpoint.stop.kind == stop_kind::cancel);
    run_engine eng{r.id, setup->plan, setup->checkpoint.seq, setup->engine};
    eng.load_checkpoint(setup->checkpoint);
    eng.start_recovered("Recovered team workflow.", setup->checkpoint_seq);
    r.write(eng);
    REQUIRE(eng.finished());
    CHECK_EQ(eng.status(), run_status::cancelled);
    setup.reset();
    auto view = load_run(r.ctx.crew_root, r.id);
    CHECK_EQ(view.replay.status, run_status::cancelled);
    for (auto& t : view.replay.tasks)
      CHECK_EQ(t.status, task_status::cancelled);
    CHECK_MESSAGE(r.check().ok, joined(r.check()));
    auto report = verify_run(r.ctx.crew_root, r.id);
    for (auto& c : report.checks)
      CHECK_MESSAGE(c.ok, c.name, ": ", joined(c));
  }
}
