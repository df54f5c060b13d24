#pragma once

#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/typed_actor.hpp>

#include "config/config.hpp"
#include "messages/type_ids.hpp"
#include "runtime/supervision/notifications.hpp"

namespace crew {

/// Routes notifications (inventory §8.5, DESIGN §2): writes each one to the
/// daily JSONL sink first, then applies the severity filter, quiet hours,
/// dedup and batch windows, and delivers the rest to stderr and to the
/// subscribed listeners. Raises the deadletter-rate alert.
using notification_router_actor = caf::typed_actor<
  /// producers -> router: one notification (fire and forget).
  caf::reacts_to<notify_atom, notification>,
  /// run -> router: a task went to the deadletter.
  caf::reacts_to<deadletter_atom, deadletter_notice>,
  /// Listeners (a dashboard, tests) receive `(notify_atom, notification)`
  /// for every delivered notification; dead listeners are dropped.
  caf::reacts_to<caf::subscribe_atom, caf::actor>,
  caf::reacts_to<caf::unsubscribe_atom, caf::actor>>;

/// Private protocol: the public one plus the self-sent batch timer.
using notification_router_impl
  = notification_router_actor::extend<caf::reacts_to<caf::flush_atom>>;

struct notification_router_options {
  notifications_config config;
  /// `<projectCrewRoot>/state/notifications`; empty = no sink (telemetry off).
  std::string sink_dir;
  /// Delivered notifications as `crew: [<severity>] <title>: <body>` lines.
  bool to_stderr = true;
};

struct notification_router_state {
  static inline const char* name = "crew.notification_router";

  notification_router_state() = default;

  notification_router_options options;
  std::unique_ptr<notification_rules> rules;
  std::unique_ptr<deadletter_alert> alert;
  std::vector<caf::actor> listeners;
  bool flush_armed = false;
  bool sink_failed = false; ///< the sink error was reported once
};

notification_router_impl::behavior_type notification_router(
  notification_router_impl::stateful_pointer<notification_router_state> self,
  notification_router_options options);

} // namespace crew
