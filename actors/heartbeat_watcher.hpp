#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include <caf/actor.hpp>
#include <caf/typed_actor.hpp>

#include "actors/metric_sink.hpp"
#include "messages/type_ids.hpp"
#include "runtime/supervision/heartbeat.hpp"

namespace crew {

/// Watches the running attempts of the node's runs: each attempt's heartbeat
/// comes from its worker's activity (output lines, throttled) and from its
/// process consuming CPU, so a long task that keeps working is never dead.
/// Every poll it classifies each watched attempt healthy / warn / stale /
/// dead (gauge and counters in the metric sink) and tells the run actor on
/// each consecutive dead tick (`hbdead`: the run records the first, and
/// kills and deadletters the attempt at `reliability.deadletterThreshold`).
using heartbeat_watcher_actor = caf::typed_actor<
  /// run -> watcher: watch attempt `attempt` of task `index` (pid 0: no
  /// process to probe).
  caf::reacts_to<watch_atom, caf::actor /*run*/, std::string /*run id*/,
                 uint32_t /*index*/, uint32_t /*attempt*/, int32_t /*pid*/>,
  caf::reacts_to<unwatch_atom, std::string /*run id*/, uint32_t /*index*/>,
  /// run -> watcher: the worker of that attempt showed activity.
  caf::reacts_to<beat_atom, std::string /*run id*/, uint32_t /*index*/>>;

using heartbeat_watcher_impl
  = heartbeat_watcher_actor::extend<caf::reacts_to<housekeep_atom>>;

struct heartbeat_watcher_options {
  heartbeat_thresholds thresholds;
  uint64_t poll_ms = 5000; ///< observability.pollIntervalMs
};

struct heartbeat_watcher_state {
  static inline const char* name = "crew.heartbeat_watcher";

  heartbeat_watcher_state() = default;

  struct watched {
    caf::actor run;
    uint32_t attempt = 0;
    int32_t pid = 0;
    int64_t last_seen_ms = 0;   ///< steady ms of the last heartbeat
    uint64_t cpu_ticks = 0;     ///< CPU time at the last probe
    uint32_t dead_ticks = 0;    ///< consecutive dead ticks
  };

  heartbeat_watcher_options options;
  metric_sink_actor sink;
  /// run id -> task index -> watched attempt
  std::unordered_map<std::string, std::unordered_map<uint32_t, watched>> runs;
  uint64_t ticks = 0;
};

heartbeat_watcher_impl::behavior_type heartbeat_watcher(
  heartbeat_watcher_impl::stateful_pointer<heartbeat_watcher_state> self,
  heartbeat_watcher_options options, metric_sink_actor sink);

/// One poll over every watched attempt at steady time `now_ms`: probes CPU
/// time, classifies, and returns the metric digests by run and the
/// (run actor, index, attempt, elapsed, consecutive dead ticks) to report.
/// Plain logic, shared by the actor and its benchmark.
struct dead_report {
  caf::actor run;
  uint32_t index = 0;
  uint32_t attempt = 0;
  uint64_t elapsed_ms = 0;
  uint32_t consecutive = 0;
};

void heartbeat_poll(heartbeat_watcher_state& st, int64_t now_ms,
                    std::unordered_map<std::string, std::vector<event_note>>& notes,
                    std::vector<dead_report>& dead);

} // namespace crew
