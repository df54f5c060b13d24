#pragma once

// Internal to workers/pi/: the rpc protocol of one model attempt on one
// process of pi_rpc_pool.

#include <chrono>

#include "runtime/workers/pi/pi_rpc.hpp"
#include "runtime/workers/pi/pi_worker.hpp"

namespace crew::pi_rpc {

/// Runs one model attempt on `w`, which was started with the attempt's
/// model: `new_session`, then `prompt` until `agent_end`, with the response
/// watchdog, the task's `deadline`, cancel and the final drain turning into
/// an `abort`. Records what happened in `rep`; false when the process must
/// be replaced.
bool run_conversation(pi_rpc_pool::worker& w, const pi_attempt_request& req,
                      const pi_callbacks& cb,
                      std::chrono::steady_clock::time_point deadline,
                      pi_attempt_report& rep);

} // namespace crew::pi_rpc
