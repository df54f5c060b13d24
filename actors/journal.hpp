#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "actors/metric_sink.hpp"
#include "messages/type_ids.hpp"
#include "store/event_log.hpp"

namespace crew {

/// The single writer of every run's event log on this node. Appends arrive
/// as ready-made JSONL bytes; one fsync (policy `batch`) covers every append
/// that reached the mailbox before the commit point, and each append is
/// answered with the seq that is now durable. Runs on its own thread so a
/// sync never blocks scheduling.
using journal_actor = caf::typed_actor<
  /// Opens (and repairs) a run's log: replies last seq and a repair note
  /// ("" when the log was intact). The first `trusted offset` bytes, holding
  /// `trusted seq` and `trusted lines`, were validated by a replay and are
  /// not read again (0, 0, 0: check the whole log).
  caf::replies_to<caf::open_atom, std::string /*run id*/,
                  std::string /*events path*/, uint64_t /*trusted offset*/,
                  uint64_t /*trusted seq*/,
                  uint64_t /*trusted lines*/>::with<uint64_t, std::string>,
  /// Appends bytes ending with event `seq`; replies `seq` once durable.
  caf::replies_to<append_atom, std::string /*run id*/, std::string /*bytes*/,
                  uint64_t /*seq*/>::with<uint64_t>,
  /// Syncs and closes a run's log.
  caf::replies_to<caf::close_atom, std::string /*run id*/>::with<bool>>;

/// The journal's own protocol: the public one plus its commit point.
using journal_impl = journal_actor::extend<caf::reacts_to<commit_atom>>;

struct journal_state {
  static inline const char* name = "crew.journal";

  journal_state() = default;

  struct open_log {
    event_log_writer writer;
    bool dirty = false;        ///< appended since the last sync
    uint64_t written_seq = 0;  ///< last seq written
  };

  struct waiter {
    caf::typed_response_promise<uint64_t> promise;
    std::string run_id;
    uint64_t seq = 0;
    int64_t received_ns = 0; ///< when the append reached the journal
  };

  fsync_policy policy = fsync_policy::batch;
  std::map<std::string, open_log> logs;
  std::vector<waiter> waiters;
  bool commit_pending = false;
  uint64_t syncs = 0;          ///< fsyncs performed
  uint64_t appended_bytes = 0;
  metric_sink_actor sink;      ///< receives commit statistics (may be null)
  commit_stats stats;          ///< accumulated since the last commit
};

journal_impl::behavior_type
journal(journal_impl::stateful_pointer<journal_state> self, fsync_policy policy,
        metric_sink_actor sink, std::string deadletter_path = {});

/// Spawns the journal on a thread of its own.
journal_actor spawn_journal(caf::actor_system& sys, fsync_policy policy,
                            metric_sink_actor sink = {},
                            std::string deadletter_path = {});

} // namespace crew
