#include "actors/node.hpp"

#include "actors/undeliverable.hpp"

#include <iostream>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace crew {

node_actor::behavior_type node(node_actor::stateful_pointer<node_state> self,
                               node_options options) {
  auto& st = self->state;
  st.options = std::move(options);
  self->set_default_handler(undeliverable_handler(st.options.deadletter_path));
  if (st.options.metrics_enabled) {
    st.sink = self->spawn<caf::detached>(metric_sink, st.options.metrics,
                                         st.options.deadletter_path);
    self->link_to(st.sink);
  }
  st.journal = spawn_journal(self->system(), st.options.fsync, st.sink,
                             st.options.deadletter_path);
  self->monitor(st.journal);
  self->set_down_handler([=](const caf::down_msg& dm) {
    auto& st = self->state;
    if (dm.source == st.journal.address()) {
      // Runs holding the old handle fail their next append and stop with
      // their state on disk intact (resumable); new runs get a new journal.
      std::cerr << "crew: journal stopped (" << to_string(dm.reason)
                << "); restarting it\n";
      ++st.journal_restarts;
      st.journal = spawn_journal(self->system(), st.options.fsync, st.sink,
                                 st.options.deadletter_path);
      self->monitor(st.journal);
      return;
    }
    st.runs.erase(dm.source);
  });
  return {
    [=](start_atom, run_setup_ptr setup, caf::actor listener) -> run_actor {
      auto& st = self->state;
      auto id = setup->manifest.run_id;
      auto handle = self->spawn(run, std::move(setup), st.journal, st.sink,
                                std::move(listener), st.options.deadletter_path);
      self->monitor(handle);
      st.runs.emplace(handle.address(), std::move(id));
      return handle;
    },
    [=](caf::get_atom) { return self->state.sink; },
  };
}

} // namespace crew
