#pragma once

// `crew loadtest`: a synthetic run on the sim backend, no resources
// involved. Bad options throw input_error *before* anything on disk
// changes.

#include <cstdint>
#include <filesystem>

#include "runtime/scheduling/planning.hpp"
#include "runtime/scheduling/run_setup.hpp"
#include "store/event_log.hpp"

namespace crew {

/// Options of `crew loadtest`.
struct loadtest_options {
  uint32_t tasks = 10000;
  graph_shape shape = graph_shape::fanout;
  uint32_t concurrency = 256;
  double fail_rate = 0, hang_rate = 0, crash_rate = 0;
  double latency_ms = 0;
  uint64_t seed = 1;
  fsync_policy fsync = fsync_policy::batch;
  uint64_t hang_timeout_ms = 200;
  uint32_t retry_attempts = 1; ///< > 1: retries on, with this many attempts
  uint64_t backoff_ms = 1;     ///< first retry delay (exponential, jittered)
};

/// Creates a synthetic sim run under `crew_root` (no resources involved).
run_setup_ptr prepare_loadtest(const std::filesystem::path& crew_root,
                               const loadtest_options& opts);

} // namespace crew
