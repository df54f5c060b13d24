#pragma once

// The embedding API of crew: start the runtime inside your process (or an
// existing caf::actor_system), execute prepared runs and observe them. The
// `crew` CLI reaches the runtime only through this header.

#include <atomic>
#include <functional>
#include <memory>
#include <string_view>

#include <caf/fwd.hpp> // caf::actor_system

#include "messages/task.hpp"       // run_progress
#include "observability/metrics.hpp" // metric_family
#include "runtime/supervision/node_options.hpp"  // node_options
#include "runtime/scheduling/run_setup.hpp"   // run_setup, run_setup_ptr
// the operations on a project root (runtime/operations/)
#include "runtime/operations/cancel.hpp"     // cancel_run
#include "runtime/operations/create.hpp"     // plan_run, prepare_run
#include "runtime/operations/deadletter.hpp" // list_deadletters, deadletter_task
#include "runtime/operations/inspect.hpp"    // load_run, run_view
#include "runtime/operations/loadtest.hpp"   // prepare_loadtest
#include "runtime/operations/metrics.hpp"    // metrics_from_logs
#include "runtime/operations/project.hpp"    // load_project, node_options_for, ...
#include "runtime/operations/recover.hpp"    // find_interrupted, decline_recovery
#include "runtime/operations/resume.hpp"     // prepare_resume, hand_over_run_lock
#include "store/event_log.hpp"     // fsync_policy

namespace crew {

/// A crew node: the journal plus the run actors of this process.
class runtime {
public:
  /// Starts a node with an actor system of its own (metrics kept in memory,
  /// no exports).
  explicit runtime(fsync_policy policy = fsync_policy::batch);

  /// Starts a node with an actor system of its own.
  explicit runtime(node_options options);

  /// Starts a node inside `sys`; the caller keeps `sys` alive longer than
  /// this object. `sys` must have loaded `caf::id_block::crew`.
  runtime(caf::actor_system& sys, node_options options);

  ~runtime();

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// Executes a prepared run and blocks until its final status is durable.
  /// `on_progress` is called a few times a second; setting `*interrupt`
  /// cancels the run (its workers are killed, the run ends cancelled).
  run_progress execute(run_setup_ptr setup,
                       const std::function<void(const run_progress&)>& on_progress
                       = nullptr,
                       const std::atomic<bool>* interrupt = nullptr);

  /// The node's current metric snapshot (empty when metrics are disabled).
  std::vector<metric_family> metrics();

  /// Feeds durable events of a run this node does not execute (e.g. read
  /// from its log by `crew serve`) to the metric sink. The first call for a
  /// run id registers it with `team` and `plan`.
  void ingest(const std::string& run_id, const std::string& team,
              std::shared_ptr<const std::vector<planned_task>> plan,
              std::vector<event_note> notes);

  /// A raw CAF message-rate baseline on this machine: messages per second
  /// between two actors exchanging batches (used beside load-test figures).
  double message_rate_baseline(uint64_t messages);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace crew
