#include "runtime/operations/loadtest.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>

#include "messages/errors.hpp"
#include "runtime/operations/detail/run_files.hpp"
#include "runtime/operations/detail/run_lock.hpp"
#include "runtime/workers/process.hpp"
#include "store/atomic_file.hpp"
#include "store/checkpoint.hpp"
#include "store/clock.hpp"
#include "store/paths.hpp"
#include "store/snapshot.hpp"

namespace fs = std::filesystem;

namespace crew {

run_setup_ptr prepare_loadtest(const fs::path& crew_root,
                               const loadtest_options& opts) {
  if (opts.tasks == 0)
    throw input_error("--tasks: must be at least 1");
  if (opts.concurrency == 0)
    throw input_error("--concurrency: must be at least 1");
  for (auto [name, rate] : {std::pair{"--fail-rate", opts.fail_rate},
                            std::pair{"--hang-rate", opts.hang_rate},
                            std::pair{"--crash-rate", opts.crash_rate}})
    if (!(rate >= 0 && rate <= 1))
      throw input_error(fmt::format("{}: must be between 0 and 1", name));
  auto setup = std::make_shared<run_setup>();
  auto now = std::chrono::system_clock::now();
  auto run_id = "loadtest_" + new_run_id(now).substr(5);
  setup->paths = make_run_paths(crew_root, run_id);
  auto& m = setup->manifest;
  m.run_id = run_id;
  m.team = "loadtest";
  m.workflow = fmt::format("{}-{}", to_string(opts.shape), opts.tasks);
  m.goal = "crew loadtest";
  m.created_at = m.updated_at = iso_time(now);
  m.cwd = crew_root.parent_path().string();
  detail::fill_manifest_paths(m, setup->paths);
  setup->backend = backend_kind::sim;
  m.runtime_mode = "sim";
  m.owner_pid = ::getpid();
  m.owner_start = process_start_time(static_cast<int>(m.owner_pid));
  setup->plan = synthetic_plan(opts.shape, opts.tasks, opts.seed);
  setup->engine.max_concurrent = opts.concurrency;
  setup->engine.runtime = "sim";
  setup->engine.record_latency = true;
  setup->sim.latency_ms = opts.latency_ms;
  setup->sim.fail_rate = opts.fail_rate;
  setup->sim.hang_rate = opts.hang_rate;
  setup->sim.crash_rate = opts.crash_rate;
  setup->sim.seed = opts.seed;
  setup->sim_hang_timeout_ms = opts.hang_timeout_ms;
  if (opts.retry_attempts > 1) {
    auto& retry = setup->engine.retry;
    retry.enabled = true;
    retry.max_attempts = opts.retry_attempts;
    retry.backoff_ms = opts.backoff_ms;
    retry.max_backoff_ms = std::max<uint64_t>(opts.backoff_ms * 16, 1);
  }
  setup->snapshot_interval_ms = 0; // one snapshot, at the end
  setup->fsync = opts.fsync;
  fs::create_directories(setup->paths.state_dir);
  setup->lock = detail::acquire_lock(setup->paths.lock(), run_id);
  write_plan(setup->paths, setup->plan);
  {
    auto log = event_log_writer::open(setup->paths.events());
    auto data = fmt::format(R"({{"team":"loadtest","workflow":"{}","taskCount":{}}})",
                            m.workflow, opts.tasks);
    log.append(detail::event_line("run.created", run_id, {}, "Run created.",
                                  data, 1),
               1);
    log.sync();
  }
  m.seq = 1;
  write_file_atomic(setup->paths.manifest(), manifest_json(m));
  return setup;
}

} // namespace crew
