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
/// `pi_pool` (runtime.piMode rpc) runs pi attempts on warm processes; null:
/// one pi process per attempt.
void task_worker(caf::blocking_actor* self, run_actor owner, task_attempt job,
                 std::shared_ptr<pi_rpc_pool> pi_pool);

} // namespace crew
