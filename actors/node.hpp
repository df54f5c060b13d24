#pragma once

#include <string>
#include <unordered_map>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/typed_actor.hpp>

#include "actors/journal.hpp"
#include "actors/heartbeat_watcher.hpp"
#include "actors/metric_sink.hpp"
#include "actors/notification_router.hpp"
#include "actors/run.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(crew::run_setup_ptr)

namespace crew {

/// The root of one crew process: owns the journal, starts run actors and
/// keeps track of them. Its handle is what embedders and the CLI talk to.
using node_actor = caf::typed_actor<
  /// Starts a prepared run; `listener` receives progress and finished.
  caf::replies_to<start_atom, run_setup_ptr, caf::actor>::with<run_actor>,
  /// The metric sink of this node (for snapshots).
  caf::replies_to<caf::get_atom>::with<metric_sink_actor>,
  /// node -> self: restart one of its own actors (0 journal, 1 heartbeat
  /// watcher, 2 notification router).
  caf::reacts_to<restart_atom, uint8_t>>;

struct node_state {
  static inline const char* name = "crew.node";

  node_state() = default;

  node_options options;
  journal_actor journal;
  metric_sink_actor sink; ///< null when observability is disabled
  notification_router_actor router; ///< null when notifications are off
  heartbeat_watcher_actor watcher;
  /// Restart times of the node's own actors (restart-intensity limit).
  std::vector<int64_t> restarts;
  std::unordered_map<caf::actor_addr, std::string> runs; ///< addr -> run id
  uint32_t journal_restarts = 0;
};

/// Restart intensity of the node's own actors: at most this many restarts
/// within the window, else the node stops restarting and says so.
inline constexpr size_t max_restarts = 5;
inline constexpr int64_t restart_window_ms = 60'000;

node_actor::behavior_type
node(node_actor::stateful_pointer<node_state> self, node_options options);

} // namespace crew
