#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/typed_actor.hpp>

#include "messages/type_ids.hpp"
#include "observability/metrics.hpp"
#include "runtime/supervision/event_metrics.hpp"
#include "runtime/supervision/node_options.hpp"

namespace crew {

using plan_ptr = std::shared_ptr<const std::vector<planned_task>>;
using metrics_snapshot = std::shared_ptr<const std::vector<metric_family>>;

} // namespace crew

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(crew::plan_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(crew::metrics_snapshot)

namespace crew {

/// The single writer of the metric registry: maps the durable event stream
/// (digests from run actors, commit statistics from the journal, scheduler
/// statistics) onto the catalogue, answers snapshot requests, writes the
/// JSONL metric sink and hands OTLP bodies to the exporter.
using metric_sink_actor = caf::typed_actor<
  caf::reacts_to<track_atom, std::string /*run*/, std::string /*team*/, plan_ptr>,
  caf::reacts_to<untrack_atom, std::string /*run*/>,
  caf::reacts_to<notes_atom, std::string /*run*/, std::vector<event_note>>,
  caf::reacts_to<stats_atom, commit_stats>,
  caf::reacts_to<stats_atom, scheduler_stats>,
  /// An OTLP push ended (ok or not): counted.
  caf::reacts_to<export_atom, bool>,
  caf::replies_to<caf::get_atom>::with<metrics_snapshot>>;

using metric_sink_impl = metric_sink_actor::extend<caf::reacts_to<export_atom>>;

/// The OTLP exporter: POSTs bodies on a thread of its own, retrying with
/// backoff; a newer body replaces an unsent one (sums are cumulative, so
/// nothing is lost by skipping one).
using otlp_exporter_actor
  = caf::typed_actor<caf::reacts_to<export_atom, std::string /*body*/>>;

struct metric_sink_state {
  static inline const char* name = "crew.metric_sink";

  metric_sink_state() = default;

  metric_sink_options options;
  std::unique_ptr<metric_registry> registry;
  std::unique_ptr<event_metrics> events;
  counter* otlp_ok = nullptr;
  counter* otlp_failed = nullptr;
  otlp_exporter_actor exporter;
  uint64_t start_unix_ns = 0;
  int64_t last_jsonl_ns = 0;
  int64_t last_otlp_ns = 0;
};

metric_sink_impl::behavior_type
metric_sink(metric_sink_impl::stateful_pointer<metric_sink_state> self,
            metric_sink_options options, std::string deadletter_path = {});

/// Writes one JSONL metric line (`{exportedAt, snapshots}`, redacted) to
/// `<dir>/<UTC date>.jsonl` and removes `*.jsonl` files older than
/// `retention_days`. Plain C++, used by the sink and testable alone.
void write_metrics_jsonl(const std::string& dir, uint32_t retention_days,
                         const std::vector<metric_family>& families);

} // namespace crew
