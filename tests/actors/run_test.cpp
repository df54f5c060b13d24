// The run actor, driven through the embedding API (crew::runtime), on
// synthetic sim runs created by prepare_loadtest.

#include "crew/crew.hpp"

#include <atomic>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "store/replay.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
namespace fs = std::filesystem;

namespace {

struct run_fixture {
  test::temp_dir dir{"crew-run"};
  fs::path crew_root;

  run_fixture() {
    crew_root = dir.path / ".crew";
    fs::create_directories(crew_root);
  }

  /// Checks that the replayed log agrees with the reported progress.
  replay_state check_log(const run_setup& setup, const run_progress& p) {
    auto rs = replay_log(setup.paths.events(), setup.plan);
    CHECK(rs.violations.empty());
    for (auto& v : rs.violations)
      MESSAGE(v);
    CHECK(rs.seq_contiguous);
    CHECK_FALSE(rs.torn_tail);
    CHECK_EQ(to_string(rs.status), p.status);
    CHECK_EQ(rs.last_seq, p.events);
    CHECK_EQ(rs.last_seq, p.durable_seq);
    uint32_t counts[7] = {};
    for (auto& t : rs.tasks)
      ++counts[static_cast<int>(t.status)];
    CHECK_EQ(counts[static_cast<int>(task_status::queued)], p.queued);
    CHECK_EQ(counts[static_cast<int>(task_status::running)], p.running);
    CHECK_EQ(counts[static_cast<int>(task_status::completed)], p.completed);
    CHECK_EQ(counts[static_cast<int>(task_status::failed)], p.failed);
    CHECK_EQ(counts[static_cast<int>(task_status::skipped)], p.skipped);
    CHECK_EQ(counts[static_cast<int>(task_status::cancelled)], p.cancelled);
    return rs;
  }
};

} // namespace

TEST_CASE_FIXTURE(run_fixture, "run: a 2000-task fanout completes") {
  loadtest_options opts;
  opts.tasks = 2000;
  opts.shape = graph_shape::fanout;
  opts.concurrency = 64;
  auto setup = prepare_loadtest(crew_root, opts);
  run_progress p;
  {
    crew::runtime rt{fsync_policy::batch};
    p = rt.execute(setup);
  }
  CHECK(p.finished);
  CHECK_EQ(p.status, "completed");
  CHECK_EQ(p.total, 2000u);
  CHECK_EQ(p.completed, 2000u);
  CHECK_EQ(p.failed + p.skipped + p.cancelled + p.running + p.queued, 0u);
  auto rs = check_log(*setup, p);
  CHECK_EQ(rs.status, run_status::completed);
  for (auto& t : rs.tasks) {
    CHECK_EQ(t.status, task_status::completed);
    CHECK_EQ(t.attempts.size(), 1u);
  }
  // the final snapshot agrees
  auto view = load_run(crew_root, setup->manifest.run_id);
  CHECK_EQ(view.manifest.status, run_status::completed);
  CHECK_EQ(view.manifest.seq, rs.last_seq);
}

TEST_CASE_FIXTURE(run_fixture,
                  "run: a failing chain fails at its first task and skips the "
                  "rest") {
  loadtest_options opts;
  opts.tasks = 30;
  opts.shape = graph_shape::chain;
  opts.concurrency = 4;
  opts.fail_rate = 1.0;
  auto setup = prepare_loadtest(crew_root, opts);
  run_progress p;
  {
    crew::runtime rt{fsync_policy::batch};
    p = rt.execute(setup);
  }
  CHECK(p.finished);
  CHECK_EQ(p.status, "failed");
  CHECK_EQ(p.failed, 1u);
  CHECK_EQ(p.skipped, 29u);
  CHECK_EQ(p.completed, 0u);
  auto rs = check_log(*setup, p);
  CHECK_EQ(rs.status, run_status::failed);
  CHECK_EQ(rs.summary, "Failed at task 't1'.");
  CHECK_EQ(rs.tasks[0].status, task_status::failed);
  CHECK_EQ(rs.tasks[0].exit_code, 1);
  for (size_t i = 1; i < rs.tasks.size(); ++i) {
    CHECK_EQ(rs.tasks[i].status, task_status::skipped);
    CHECK(rs.tasks[i].attempts.empty());
  }
}

TEST_CASE_FIXTURE(run_fixture,
                  "run: the interrupt flag cancels a running sim run") {
  loadtest_options opts;
  opts.tasks = 500;
  opts.shape = graph_shape::fanout;
  opts.concurrency = 8;
  opts.latency_ms = 50;
  auto setup = prepare_loadtest(crew_root, opts);
  std::atomic<bool> interrupt{false};
  run_progress p;
  {
    crew::runtime rt{fsync_policy::batch};
    p = rt.execute(
      setup,
      [&](const run_progress& x) {
        if (x.completed >= 8)
          interrupt = true;
      },
      &interrupt);
  }
  CHECK(p.finished);
  CHECK_EQ(p.status, "cancelled");
  CHECK_EQ(p.running, 0u);
  CHECK_EQ(p.queued, 0u);
  CHECK_GT(p.cancelled, 0u);
  CHECK_LT(p.completed, 500u);
  auto rs = check_log(*setup, p);
  CHECK_EQ(rs.status, run_status::cancelled);
  for (auto& t : rs.tasks) {
    CHECK(is_terminal(t.status));
    CHECK_NE(t.status, task_status::running);
    CHECK_NE(t.status, task_status::failed);
  }
}

TEST_CASE_FIXTURE(run_fixture, "run: one runtime executes runs one after "
                               "another") {
  crew::runtime rt{fsync_policy::none};
  for (auto shape : {graph_shape::diamond, graph_shape::random}) {
    loadtest_options opts;
    opts.tasks = 100;
    opts.shape = shape;
    opts.concurrency = 16;
    auto setup = prepare_loadtest(crew_root, opts);
    auto p = rt.execute(setup);
    CHECK_EQ(p.status, "completed");
    CHECK_EQ(p.completed, 100u);
    check_log(*setup, p);
  }
}
