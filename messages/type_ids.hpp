#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/type_id.hpp> // CAF_BEGIN_TYPE_ID_BLOCK

#include "messages/metrics.hpp"
#include "messages/notification.hpp"
#include "messages/task.hpp"

// The one type-ID block of the project. Names are the wire names: keep them
// fully qualified. Atom texts are at most 10 characters and unique.
CAF_BEGIN_TYPE_ID_BLOCK(crew, caf::first_custom_type_id)

  CAF_ADD_TYPE_ID(crew, (crew::task_attempt))
  CAF_ADD_TYPE_ID(crew, (crew::sim_job))
  CAF_ADD_TYPE_ID(crew, (std::vector<crew::sim_job>))
  CAF_ADD_TYPE_ID(crew, (crew::attempt_started))
  CAF_ADD_TYPE_ID(crew, (crew::attempt_result))
  CAF_ADD_TYPE_ID(crew, (std::vector<crew::attempt_result>))
  CAF_ADD_TYPE_ID(crew, (crew::run_progress))
  CAF_ADD_TYPE_ID(crew, (crew::event_note))
  CAF_ADD_TYPE_ID(crew, (std::vector<crew::event_note>))
  CAF_ADD_TYPE_ID(crew, (crew::bucketed))
  CAF_ADD_TYPE_ID(crew, (crew::scheduler_stats))
  CAF_ADD_TYPE_ID(crew, (crew::commit_stats))
  CAF_ADD_TYPE_ID(crew, (crew::notification))
  CAF_ADD_TYPE_ID(crew, (crew::deadletter_notice))

  /// run -> journal: append bytes of a run's log; reply: durable seq.
  CAF_ADD_ATOM(crew, crew, append_atom, "append")
  /// journal -> journal: group commit point.
  CAF_ADD_ATOM(crew, crew, commit_atom, "commit")
  /// run -> sim pool / task_worker: start attempts.
  CAF_ADD_ATOM(crew, crew, dispatch_atom, "dispatch")
  /// worker -> run: attempt results / a process started.
  CAF_ADD_ATOM(crew, crew, result_atom, "result")
  CAF_ADD_ATOM(crew, crew, started_atom, "started")
  /// anyone -> run: cancel; run -> self: kill stragglers, time limit.
  CAF_ADD_ATOM(crew, crew, cancel_atom, "cancel")
  CAF_ADD_ATOM(crew, crew, hardkill_atom, "hardkill")
  /// run -> self: a retried task's backoff is over.
  CAF_ADD_ATOM(crew, crew, retry_atom, "retry")
  CAF_ADD_ATOM(crew, crew, deadline_atom, "deadline")
  /// run -> subscriber: progress and the final status.
  CAF_ADD_ATOM(crew, crew, progress_atom, "progress")
  CAF_ADD_ATOM(crew, crew, finished_atom, "finished")
  /// run -> self: periodic snapshot / progress / cancel-request poll.
  CAF_ADD_ATOM(crew, crew, housekeep_atom, "housekeep")
  /// sim pool -> self: deliver due results.
  CAF_ADD_ATOM(crew, crew, due_atom, "due")
  /// node: start a run; node -> self: restart one of its own actors.
  CAF_ADD_ATOM(crew, crew, start_atom, "start")
  CAF_ADD_ATOM(crew, crew, restart_atom, "restart")
  /// run -> heartbeat watcher: watch / stop watching an attempt; activity.
  CAF_ADD_ATOM(crew, crew, watch_atom, "watch")
  CAF_ADD_ATOM(crew, crew, unwatch_atom, "unwatch")
  CAF_ADD_ATOM(crew, crew, beat_atom, "beat")
  /// heartbeat watcher -> run: an attempt's heartbeat is dead (n-th tick).
  CAF_ADD_ATOM(crew, crew, hbdead_atom, "hbdead")
  /// run -> metric sink: a run begins / ends; durable event digests.
  CAF_ADD_ATOM(crew, crew, track_atom, "track")
  CAF_ADD_ATOM(crew, crew, untrack_atom, "untrack")
  CAF_ADD_ATOM(crew, crew, notes_atom, "notes")
  /// journal / run -> metric sink: commit and scheduler statistics.
  CAF_ADD_ATOM(crew, crew, stats_atom, "stats")
  /// metric sink -> self: JSONL sink and OTLP push timers.
  CAF_ADD_ATOM(crew, crew, export_atom, "export")
  /// producers -> notification router: a notification / a deadletter;
  /// router -> subscribers: a delivered notification.
  CAF_ADD_ATOM(crew, crew, notify_atom, "notify")
  CAF_ADD_ATOM(crew, crew, deadletter_atom, "deadletter")

CAF_END_TYPE_ID_BLOCK(crew)
