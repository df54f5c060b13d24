#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp> // inspect() type names

namespace crew {

/// What an event means to the metric catalogue.
enum class note_kind : uint8_t {
  run_status = 1, ///< status: run_status; value: unix ms of the event
  task_terminal,  ///< status: task_status; value: duration ms; tokens
  task_retry,     ///< a failed attempt will be retried; value: delay ms
  task_deadletter,///< status: deadletter reason code
  task_heartbeat, ///< a watcher tick: status: level (0 healthy .. 3 dead);
                  ///< value: staleness ms
  heartbeat_dead, ///< a running task's heartbeat went dead; value: elapsed ms
  mailbox,        ///< status: 0 inbox, 1 outbox
  run_resumed,    ///< a recovery plan was applied
};

/// A compact, typed digest of one event for the metric sink. The run engine
/// produces one beside each event line that a metric depends on, and the
/// sink receives them once the line is durable (journal first); a parsed log
/// line gives the same digest (`crew metrics` without a live node).
struct event_note {
  note_kind kind = note_kind::run_status;
  uint8_t status = 0;
  uint32_t task = UINT32_MAX; ///< plan index, UINT32_MAX for run-level notes
  uint32_t attempt = 0;
  uint64_t value = 0;
  uint64_t tokens = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_note& x) {
  return f(caf::meta::type_name("crew::event_note"), x.kind, x.status, x.task,
           x.attempt, x.value, x.tokens);
}

/// Observations bucketed by the sender with the default metric buckets
/// (non-cumulative counts, one per bound plus overflow) and their sum.
struct bucketed {
  std::vector<uint64_t> counts;
  double sum = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bucketed& x) {
  return f(caf::meta::type_name("crew::bucketed"), x.counts, x.sum);
}

/// A run's scheduler state for the scheduler metrics.
struct scheduler_stats {
  std::string run_id;
  uint32_t queued = 0;
  uint32_t running = 0;
  bucketed dispatch_latency_ms; ///< ready -> dispatched since the last stats
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scheduler_stats& x) {
  return f(caf::meta::type_name("crew::scheduler_stats"), x.run_id, x.queued,
           x.running, x.dispatch_latency_ms);
}

/// One group commit of the journal.
struct commit_stats {
  uint64_t events = 0;                ///< events made durable by it
  bucketed append_to_durable_ms;      ///< per append: receipt -> durable
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, commit_stats& x) {
  return f(caf::meta::type_name("crew::commit_stats"), x.events,
           x.append_to_durable_ms);
}

} // namespace crew
