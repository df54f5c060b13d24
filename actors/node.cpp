#include "actors/node.hpp"

#include "actors/undeliverable.hpp"

#include <chrono>
#include <iostream>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace crew {

namespace {

int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch())
    .count();
}

void spawn_watcher(node_actor::stateful_pointer<node_state> self) {
  auto& st = self->state;
  heartbeat_watcher_options opts;
  opts.thresholds = st.options.heartbeat;
  opts.poll_ms = st.options.heartbeat_poll_ms;
  st.watcher = self->spawn(heartbeat_watcher, opts, st.sink);
  self->monitor(st.watcher);
}

void spawn_router(node_actor::stateful_pointer<node_state> self) {
  auto& st = self->state;
  if (!st.options.notifications_enabled)
    return;
  notification_router_options opts;
  opts.config = st.options.notifications;
  opts.sink_dir = st.options.notifications_dir;
  st.router = self->spawn(notification_router, std::move(opts));
  self->monitor(st.router);
}

} // namespace

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
  spawn_router(self);
  spawn_watcher(self);
  // Shutting down: stop the node's own actors (timers keep them alive).
  self->set_exit_handler([=](const caf::exit_msg& msg) {
    auto& st = self->state;
    if (st.watcher)
      self->send_exit(st.watcher, msg.reason);
    if (st.router)
      self->send_exit(st.router, msg.reason);
    self->send_exit(st.journal, msg.reason);
    self->quit(msg.reason);
  });
  self->set_down_handler([=](const caf::down_msg& dm) {
    auto& st = self->state;
    auto own = dm.source == st.journal.address()
               || (st.router && dm.source == st.router.address())
               || (st.watcher && dm.source == st.watcher.address());
    if (!own) {
      st.runs.erase(dm.source);
      return;
    }
    // One of the node's own actors died: restart it after a backoff, within
    // a restart-intensity limit. Runs keep their state on disk; a run whose
    // journal died stops and is resumable.
    auto now = steady_ms();
    std::erase_if(st.restarts,
                  [&](int64_t t) { return now - t > restart_window_ms; });
    auto which = dm.source == st.journal.address()   ? "journal"
                 : dm.source == st.watcher.address() ? "heartbeat watcher"
                                                     : "notification router";
    if (st.restarts.size() >= max_restarts) {
      std::cerr << "crew: " << which << " stopped (" << to_string(dm.reason)
                << "); " << max_restarts << " restarts within "
                << restart_window_ms / 1000 << " s: not restarting it again\n";
      return;
    }
    st.restarts.push_back(now);
    auto delay = std::chrono::milliseconds{50 << std::min<size_t>(st.restarts.size(), 6)};
    std::cerr << "crew: " << which << " stopped (" << to_string(dm.reason)
              << "); restarting it in " << delay.count() << " ms\n";
    uint8_t which_code = dm.source == st.journal.address()   ? 0
                         : dm.source == st.watcher.address() ? 1
                                                             : 2;
    self->delayed_send(self, delay, restart_atom_v, which_code);
  });
  return {
    [=](start_atom, run_setup_ptr setup, caf::actor listener) -> run_actor {
      auto& st = self->state;
      auto id = setup->manifest.run_id;
      auto handle = self->spawn(run, std::move(setup), st.journal, st.sink,
                                std::move(listener), st.options.deadletter_path,
                                st.router, st.watcher);
      self->monitor(handle);
      st.runs.emplace(handle.address(), std::move(id));
      return handle;
    },
    [=](caf::get_atom) { return self->state.sink; },
    [=](restart_atom, uint8_t which) {
      auto& st = self->state;
      if (which == 0) {
        ++st.journal_restarts;
        st.journal = spawn_journal(self->system(), st.options.fsync, st.sink,
                                   st.options.deadletter_path);
        self->monitor(st.journal);
      } else if (which == 1) {
        spawn_watcher(self);
      } else {
        spawn_router(self);
      }
    },
  };
}

} // namespace crew
