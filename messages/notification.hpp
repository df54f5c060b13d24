#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp> // inspect() type names

namespace crew {

/// How much a notification matters (pi-crew's severities, in order).
enum class severity : uint8_t { info = 1, warning, error, critical };

/// One notification for the router (inventory §8.5). `id` and `timestamp`
/// are optional: the router stamps an empty id with the dedup key
/// (`<source>:<runId|global>:<title>`) and a zero timestamp with the time of
/// receipt.
struct notification {
  std::string id;
  std::string source; ///< e.g. "heartbeat-watcher", "recovery", "deadletter"
  std::string run_id; ///< empty: not about one run
  std::string title;
  std::string body;
  severity sev = severity::info;
  std::chrono::system_clock::time_point timestamp{};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, notification& x) {
  return f(caf::meta::type_name("crew::notification"), x.id, x.source,
           x.run_id, x.title, x.body, x.sev, x.timestamp);
}

/// A task went to the deadletter; feeds the router's deadletter-rate alert.
struct deadletter_notice {
  std::string run_id;
  std::string task_id;
  std::string reason; ///< "max-retries", "heartbeat-dead", "manual", …
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deadletter_notice& x) {
  return f(caf::meta::type_name("crew::deadletter_notice"), x.run_id,
           x.task_id, x.reason);
}

} // namespace crew
