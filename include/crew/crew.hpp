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
#include "runtime/run_setup.hpp"   // run_setup, run_setup_ptr
#include "runtime/service.hpp"     // prepare_run, prepare_resume, ...
#include "store/event_log.hpp"     // fsync_policy

namespace crew {

/// A crew node: the journal plus the run actors of this process.
class runtime {
public:
  /// Starts a node with an actor system of its own.
  explicit runtime(fsync_policy policy = fsync_policy::batch);

  /// Starts a node inside `sys`; the caller keeps `sys` alive longer than
  /// this object. `sys` must have loaded `caf::id_block::crew`.
  runtime(caf::actor_system& sys, fsync_policy policy);

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

  /// A raw CAF message-rate baseline on this machine: messages per second
  /// between two actors exchanging batches (used beside load-test figures).
  double message_rate_baseline(uint64_t messages);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace crew
