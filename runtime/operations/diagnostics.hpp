#pragma once

// Read-only observability views of persisted runs, in plain C++: event
// objects and the pi-crew event cursor, the `crew status --json` document,
// the run list, the heartbeat summary and the diagnostic export
// (inventory §1.12, §6.3, §6.7). Used by `crew serve` and `crew diag`.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/supervision/heartbeat.hpp"
#include "runtime/operations/inspect.hpp"
#include "store/replay.hpp"

namespace crew {

/// One event line as pi-crew's event object: `{time, type, runId, taskId?,
/// message?, data?, metadata: {seq}}` (`data` parsed from its raw text).
nlohmann::json event_json(const event_view& ev);

/// pi-crew's `readEventsCursor` over the log at `events`: the events with
/// `seq > since_seq`, at most `limit` of them, as `{events, nextSeq, total}`
/// where `nextSeq` is the highest returned seq (or `since_seq` when none is
/// returned) and `total` counts the events with `seq > since_seq` before the
/// limit. Throws like `for_each_event`.
nlohmann::json events_cursor(const std::filesystem::path& events,
                             uint64_t since_seq, uint64_t limit);

/// The last `n` events of the log at `events` as event objects.
nlohmann::json recent_events(const std::filesystem::path& events, size_t n);

/// The run status according to the log (the last `run.<status>` event;
/// `queued` when there is none). Throws like `for_each_event`.
run_status run_status_from_log(const std::filesystem::path& events);

/// `crew status RUN --json`: `{"manifest": …, "tasks": […]}` (plus
/// `violations` when the replay found any); the manifest's status, summary
/// and seq come from the log replay.
nlohmann::json run_status_json(const run_view& v);

/// pi-crew's HeartbeatSummary (inventory §6.3, §6.7) over the queued and
/// running tasks of a `tasks.json`-shaped array: a task's `heartbeat`
/// object (`{lastSeenAt, alive}`) is classified by age; a task without one
/// (crew records none yet) counts as `missing` and in `gradient.dead`.
/// `healthy` includes `warn`.
nlohmann::json heartbeat_summary(std::string_view run_id,
                                 const nlohmann::json& tasks,
                                 std::chrono::system_clock::time_point now,
                                 const heartbeat_thresholds& th = {});

/// The process environment `envp` (NULL-terminated `KEY=VALUE` entries) as
/// an object, secret-named variables replaced by `"***"`.
nlohmann::json redacted_environment(char** envp);

/// The diagnostic report of a run (inventory §6.7, schemaVersion 2):
/// `{schemaVersion, runId, exportedAt, manifest, tasks, recentEvents (last
/// 200), heartbeat, agents, envRedacted, metricsSnapshot}`, where the
/// metric snapshot is derived from this run's log alone. Everything but
/// `heartbeat` passes through `redact`. Throws input_error for an invalid
/// or unknown run id.
nlohmann::json diagnostic_report(const std::filesystem::path& crew_root,
                                 std::string_view run_id, char** envp,
                                 std::chrono::system_clock::time_point now
                                 = std::chrono::system_clock::now());

/// Writes `diagnostic_report` pretty-printed to `<artifacts root of the
/// run>/diagnostic/diagnostic-<exportedAt, ':' and '.' replaced by
/// '-'>.json` (atomically) and returns that path.
std::filesystem::path write_diagnostic(const std::filesystem::path& crew_root,
                                       std::string_view run_id, char** envp);

} // namespace crew
