#pragma once

// Running an existing run (again): resume it, start a queued one, or
// recover an interrupted one; and passing its lock to another process.
// Bad input throws input_error *before* anything on disk changes.

#include <cstdint>
#include <string_view>

#include "runtime/operations/project.hpp"
#include "runtime/scheduling/run_setup.hpp"

namespace crew {

/// How prepare_resume treats the run's current state.
enum class resume_mode : uint8_t {
  resume = 1,   ///< requeue every task that did not complete
  start_queued, ///< start a created, never started run (`run --async`)
  recover,      ///< an interrupted run: requeue its interrupted attempts
};

/// Prepares `run_id` to run (again): takes the run lock, then replays its
/// log; the run actor requeues every task that did not complete. Workers
/// orphaned by a dead owner are killed first. Throws input_error if the run
/// is unknown, owned by a live process, has nothing left to do, or (for
/// `start_queued`) is no longer queued.
run_setup_ptr prepare_resume(const project_context& ctx, std::string_view run_id,
                             resume_mode mode = resume_mode::resume);

/// Passes the run lock held by `setup` to process `pid` (it adopts it in
/// prepare_resume): no other process can take the run in between.
void hand_over_run_lock(const run_setup& setup, int pid);

} // namespace crew
