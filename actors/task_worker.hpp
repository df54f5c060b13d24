#pragma once

#include <memory>

#include <caf/fwd.hpp>

#include "actors/run.hpp"
#include "messages/task.hpp"

namespace crew {

/// Executes one attempt of one task on a thread of its own (a blocking
/// actor): writes the prompt, runs the worker process (or the scaffold),
/// reports the pid, then the result, to the run actor. The run actor
/// monitors it: if it dies without a result, the attempt has failed.
/// From `setup`: the warm pi processes (runtime.piMode rpc) and worktree
/// mode (the attempt runs in the task's git worktree, its diff recorded).
void task_worker(caf::blocking_actor* self, run_actor owner, task_attempt job,
                 run_setup_ptr setup);

} // namespace crew
