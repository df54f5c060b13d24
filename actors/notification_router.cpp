#include "actors/notification_router.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace crew {

namespace {

using self_ptr
  = notification_router_impl::stateful_pointer<notification_router_state>;

void deliver(self_ptr self, const notification& n) {
  auto& st = self->state;
  if (st.options.to_stderr) {
    std::string line = "crew: [";
    line += to_string(n.sev);
    line += "] ";
    line += n.title;
    if (!n.body.empty()) {
      line += ": ";
      line += n.body;
    }
    line += '\n';
    std::cerr << line << std::flush;
  }
  for (auto& listener : st.listeners)
    caf::anon_send(listener, notify_atom_v, n); // listeners are dynamically typed
}

/// Arms the batch timer for the pending batch, if not armed yet.
void arm_flush(self_ptr self) {
  auto& st = self->state;
  auto due = st.rules->batch_due();
  if (!due || st.flush_armed)
    return;
  st.flush_armed = true;
  auto delay = std::max(*due - self->clock().now(),
                        caf::actor_clock::duration_type::zero());
  self->delayed_send(self, delay, caf::flush_atom_v);
}

void route(self_ptr self, notification n) {
  auto& st = self->state;
  if (n.timestamp == std::chrono::system_clock::time_point{})
    n.timestamp = std::chrono::system_clock::now();
  if (n.id.empty())
    n.id = dedup_key(n);
  // The sink sees every notification, filtered or not (as pi-crew's does).
  if (!st.options.sink_dir.empty()) {
    try {
      write_notification_jsonl(st.options.sink_dir,
                               st.options.config.sink_retention_days, n);
      st.sink_failed = false;
    } catch (const std::exception& e) {
      if (!st.sink_failed)
        std::cerr << "crew: notification sink: " << e.what() << "\n";
      st.sink_failed = true;
    }
  }
  switch (st.rules->decide(n, std::chrono::system_clock::now(),
                           self->clock().now())) {
    case delivery::deliver_now:
      deliver(self, n);
      break;
    case delivery::batched:
      arm_flush(self);
      break;
    default:
      break;
  }
}

} // namespace

notification_router_impl::behavior_type
notification_router(self_ptr self, notification_router_options options) {
  auto& st = self->state;
  st.options = std::move(options);
  st.rules = std::make_unique<notification_rules>(st.options.config);
  st.alert
    = std::make_unique<deadletter_alert>(st.options.config.deadletter_alert_per_hour);
  self->set_down_handler([=](const caf::down_msg& dm) {
    auto& ls = self->state.listeners;
    ls.erase(std::remove_if(ls.begin(), ls.end(),
                            [&](const caf::actor& a) {
                              return a.address() == dm.source;
                            }),
             ls.end());
  });
  return {
    [=](notify_atom, notification& n) { route(self, std::move(n)); },
    [=](deadletter_atom, const deadletter_notice& dl) {
      auto& st = self->state;
      if (!st.alert->record(self->clock().now()))
        return;
      notification n;
      n.id = "deadletter_rate";
      n.source = "deadletter";
      n.sev = severity::error;
      n.title = deadletter_alert_title(st.alert->per_hour());
      n.body = std::to_string(st.alert->count(self->clock().now()))
               + " deadletters in the last hour; latest: task " + dl.task_id
               + " of run " + dl.run_id + " (" + dl.reason + ")";
      route(self, std::move(n));
    },
    [=](caf::subscribe_atom, caf::actor& listener) {
      auto& ls = self->state.listeners;
      if (!listener || std::find(ls.begin(), ls.end(), listener) != ls.end())
        return;
      self->monitor(listener);
      ls.push_back(std::move(listener));
    },
    [=](caf::unsubscribe_atom, const caf::actor& listener) {
      auto& ls = self->state.listeners;
      auto i = std::find(ls.begin(), ls.end(), listener);
      if (i != ls.end()) {
        self->demonitor(listener);
        ls.erase(i);
      }
    },
    [=](caf::flush_atom) {
      auto& st = self->state;
      st.flush_armed = false;
      for (auto& n : st.rules->flush_batch(self->clock().now()))
        deliver(self, n);
      arm_flush(self); // a batch started after the timer was armed
    },
  };
}

} // namespace crew
