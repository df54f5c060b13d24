#pragma once

#include <cstdint>
#include <queue>
#include <vector>

#include <caf/typed_actor.hpp>

#include "actors/run.hpp"
#include "runtime/workers/sim.hpp"

namespace crew {

using worker_pool_impl
  = worker_pool_actor::extend<caf::reacts_to<due_atom>>;

struct worker_pool_state {
  static inline const char* name = "crew.worker_pool";

  worker_pool_state() = default;

  struct pending {
    int64_t due_ns = 0;
    attempt_result result;
    bool operator>(const pending& other) const {
      return due_ns > other.due_ns;
    }
  };

  run_actor owner;
  sim_params params;
  uint64_t hang_timeout_ms = 1000;
  std::priority_queue<pending, std::vector<pending>, std::greater<>> queue;
  int64_t timer_due_ns = 0; ///< due time of the armed timer, 0 if none
};

/// Simulated workers: decides each attempt's fate from a seeded generator
/// (latency, failure, hang, crash) and reports results in batches.
worker_pool_impl::behavior_type
worker_pool(worker_pool_impl::stateful_pointer<worker_pool_state> self,
            run_actor owner, sim_params params, uint64_t hang_timeout_ms,
            std::string deadletter_path = {});

} // namespace crew
