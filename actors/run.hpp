#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <queue>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/journal.hpp"
#include "actors/heartbeat_watcher.hpp"
#include "actors/metric_sink.hpp"
#include "actors/notification_router.hpp"
#include "messages/type_ids.hpp"
#include "runtime/scheduling/run_setup.hpp"

namespace crew {

/// Owns one run: its task graph (event-sourced through a run_engine), its
/// workers and its event stream. Dispatches ready tasks as slots free,
/// ships events to the journal in batches, and reports progress and the
/// final status (only once durable) to a listener.
using run_actor = caf::typed_actor<
  caf::reacts_to<result_atom, std::vector<attempt_result>>,
  caf::reacts_to<started_atom, attempt_started>,
  caf::reacts_to<cancel_atom>,
  /// task_worker -> run: the attempt's worker showed activity (throttled).
  caf::reacts_to<beat_atom, uint32_t /*index*/, uint32_t /*attempt*/>,
  /// heartbeat watcher -> run: the attempt's heartbeat is dead for the
  /// `consecutive`-th tick in a row.
  caf::reacts_to<hbdead_atom, uint32_t /*index*/, uint32_t /*attempt*/,
                 uint64_t /*elapsed ms*/, uint32_t /*consecutive*/>>;

/// Private protocol: the public one plus self-sent timers.
using run_impl = run_actor::extend<caf::reacts_to<retry_atom>,
                                   caf::reacts_to<hardkill_atom, int32_t>,
                                   caf::reacts_to<deadline_atom>,
                                   caf::reacts_to<housekeep_atom>>;

/// A pooled simulated worker (load tests): same result protocol as the
/// task_worker, no thread or process per attempt.
using worker_pool_actor
  = caf::typed_actor<caf::reacts_to<dispatch_atom, std::vector<sim_job>>,
                     caf::reacts_to<cancel_atom>>;

struct run_state {
  static inline const char* name = "crew.run";

  run_state() = default;

  run_setup_ptr setup;
  std::unique_ptr<run_engine> engine;
  journal_actor journal;
  metric_sink_actor sink; ///< may be null (observability disabled)
  notification_router_actor router; ///< may be null (notifications off)
  heartbeat_watcher_actor watcher;  ///< may be null
  caf::actor listener;
  worker_pool_actor pool;
  /// Live task_worker actors -> (task index, attempt).
  std::unordered_map<caf::actor_addr, std::pair<uint32_t, uint32_t>> workers;
  /// Running task index -> (attempt, worker process group).
  std::unordered_map<uint32_t, std::pair<uint32_t, int32_t>> pgids;
  std::vector<uint32_t> dispatch_buf;
  std::vector<sim_job> sim_buf;
  uint64_t appends_in_flight = 0;
  /// Pending retries (steady ns when due, task index), earliest first; one
  /// timer covers them all, so a burst of retries costs one wake-up.
  std::priority_queue<std::pair<int64_t, uint32_t>,
                      std::vector<std::pair<int64_t, uint32_t>>, std::greater<>>
    retry_heap;
  int64_t retry_timer_ns = 0; ///< due time of the armed retry timer, 0: none
  int64_t last_snapshot_ns = 0;
  uint64_t snapshot_seq = 0;
  int64_t last_checkpoint_ns = 0;
  uint64_t checkpoint_seq = 0;
  /// The seq of an adaptive.plan_injected event whose plan is not in
  /// plan.json yet (written once the event is durable); 0: none.
  uint64_t plan_seq = 0;
  /// Running tasks of a cancelled or expired run, killed once the engine's
  /// stop intent is durable (a crash before that never leaves killed
  /// workers behind a log that does not say why).
  std::vector<uint32_t> kill_after_stop;
  uint32_t ticks = 0; ///< housekeeping ticks so far
  /// A captured checkpoint waiting for its seq to become durable.
  std::unique_ptr<run_checkpoint> pending_checkpoint;
  bool started = false;
  bool deadletters_written = false; ///< deadletter.jsonl needs a final sync
  bool deadletters_unsynced = false; ///< written since the last checkpoint
  bool stopping = false; ///< final snapshot sent, waiting to quit
  std::string fatal;     ///< journal failure: the run stops, state kept
};

run_impl::behavior_type run(run_impl::stateful_pointer<run_state> self,
                            run_setup_ptr setup, journal_actor journal,
                            metric_sink_actor sink, caf::actor listener,
                            std::string deadletter_path = {},
                            notification_router_actor router = {},
                            heartbeat_watcher_actor watcher = {});

} // namespace crew
