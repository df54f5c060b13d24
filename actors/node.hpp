#pragma once

#include <string>
#include <unordered_map>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/typed_actor.hpp>

#include "actors/journal.hpp"
#include "actors/metric_sink.hpp"
#include "actors/run.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(crew::run_setup_ptr)

namespace crew {

/// The root of one crew process: owns the journal, starts run actors and
/// keeps track of them. Its handle is what embedders and the CLI talk to.
using node_actor = caf::typed_actor<
  /// Starts a prepared run; `listener` receives progress and finished.
  caf::replies_to<start_atom, run_setup_ptr, caf::actor>::with<run_actor>,
  /// The metric sink of this node (for snapshots).
  caf::replies_to<caf::get_atom>::with<metric_sink_actor>>;

struct node_state {
  static inline const char* name = "crew.node";

  node_state() = default;

  node_options options;
  journal_actor journal;
  metric_sink_actor sink; ///< null when observability is disabled
  std::unordered_map<caf::actor_addr, std::string> runs; ///< addr -> run id
  uint32_t journal_restarts = 0;
};

node_actor::behavior_type
node(node_actor::stateful_pointer<node_state> self, node_options options);

} // namespace crew
