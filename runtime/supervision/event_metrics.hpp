#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "messages/metrics.hpp"
#include "observability/metrics.hpp"
#include "store/model.hpp"

namespace crew {

struct event_view;

/// Maps the event stream onto the metric catalogue (inventory §7.3 plus the
/// journal and scheduler metrics). Registers every family eagerly, so the
/// whole catalogue is visible before the first event. Not thread-safe: one
/// owner (the metric sink actor, or `crew metrics` deriving from logs).
class event_metrics {
public:
  explicit event_metrics(metric_registry& registry);

  /// Starts tracking a run. `plan` must outlive the tracking (until
  /// `untrack`); task indices of notes refer to it.
  void track(std::string run_id, std::string team,
             std::shared_ptr<const std::vector<planned_task>> plan);

  /// Stops tracking a run (its per-run gauges drop to zero).
  void untrack(const std::string& run_id);

  /// Applies the digests of durable events of a run.
  void apply(const std::string& run_id, const std::vector<event_note>& notes);

  /// Applies one group commit of the journal.
  void apply(const commit_stats& stats);

  /// Applies a run's scheduler statistics.
  void apply(const scheduler_stats& stats);

  /// The digest of a parsed log line, if the catalogue cares about it.
  /// `index_of` maps a task id to its plan index (UINT32_MAX if unknown).
  static bool note_of(const event_view& ev,
                      const std::function<uint32_t(std::string_view)>& index_of,
                      event_note& out);

  /// Applies a whole persisted log (`crew metrics` without a live node).
  void apply_log(const std::string& run_id, const std::string& team,
                 std::shared_ptr<const std::vector<planned_task>> plan,
                 const std::string& events_path);

private:
  /// Per-role series of a run; `tokens` is created by the first tokens.
  struct role_entry {
    histogram* duration = nullptr;
    histogram* tokens = nullptr;
  };

  struct run_entry {
    std::string team;
    std::shared_ptr<const std::vector<planned_task>> plan;
    int64_t running_since_ms = 0;
    histogram* retry_count = nullptr;
    gauge* queued = nullptr;
    gauge* running = nullptr;
    std::unordered_map<std::string, role_entry> by_role;
  };

  void apply_one(const std::string& run_id, run_entry& run, const event_note& n);
  std::string_view task_id(const run_entry& run, uint32_t index) const;
  role_entry& role_for(run_entry& run, const std::string& role);

  family<counter>& run_count_;
  family<histogram>& run_duration_;
  family<counter>& task_count_;
  family<histogram>& task_duration_;
  family<histogram>& task_tokens_;
  family<histogram>& retry_count_;
  family<counter>& retry_attempts_;
  family<histogram>& retry_delay_;
  family<counter>& deadletters_;
  family<counter>& subagents_;
  family<counter>& mailbox_;
  family<gauge>& staleness_;
  family<counter>& heartbeat_levels_;
  family<counter>& heartbeat_dead_;
  family<histogram>& append_to_durable_;
  family<histogram>& fsync_batch_;
  family<gauge>& queued_;
  family<gauge>& running_;
  family<histogram>& dispatch_latency_;
  counter* task_by_status_[7] = {};
  counter* task_retries_ = nullptr; ///< crew.task.count{status=retry}
  std::unordered_map<std::string, run_entry> runs_;
};

/// Reason codes of `note_kind::task_deadletter` and their label values.
const char* deadletter_reason_name(uint8_t code) noexcept;

/// Heartbeat level names (0 healthy, 1 warn, 2 stale, 3 dead).
const char* heartbeat_level_name(uint8_t level) noexcept;

} // namespace crew
