// prepare_loadtest (runtime/operations/loadtest.hpp).

#include "runtime/operations/loadtest.hpp"

#include <filesystem>

#include <doctest/doctest.h>

#include "messages/errors.hpp"
#include "runtime/operations/inspect.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
namespace fs = std::filesystem;

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
