#include "actors/journal.hpp"

#include "actors/undeliverable.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <map>
#include <chrono>

#include "messages/errors.hpp"
#include "observability/metrics.hpp"

namespace crew {

namespace {

using self_ptr = journal_impl::stateful_pointer<journal_state>;

caf::error io_failure(const std::string& what) {
  return caf::make_error(caf::sec::runtime_error, what);
}

int64_t steady_ns() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch())
    .count();
}

/// Adds one append's receipt -> durable latency to the commit statistics.
void observe_latency(journal_state& st, int64_t received_ns, int64_t now_ns) {
  auto& b = st.stats.append_to_durable_ms;
  auto& bounds = default_buckets();
  if (b.counts.size() != bounds.size() + 1)
    b.counts.assign(bounds.size() + 1, 0);
  auto ms = static_cast<double>(now_ns - received_ns) / 1e6;
  auto i = std::lower_bound(bounds.begin(), bounds.end(), ms) - bounds.begin();
  ++b.counts[static_cast<size_t>(i)];
  b.sum += ms;
}

/// Sends the statistics of the commit just made to the metric sink.
void publish_stats(self_ptr self) {
  auto& st = self->state;
  if (st.sink && st.stats.events > 0)
    self->send(st.sink, stats_atom_v, std::move(st.stats));
  st.stats = commit_stats{};
}

/// Syncs every dirty log and answers every waiter: the group commit. A log
/// whose sync fails fails its own waiters only, and is closed (its run stops
/// and stays resumable); the other runs' logs are unaffected.
void commit(self_ptr self) {
  auto& st = self->state;
  st.commit_pending = false;
  std::map<std::string, std::string> failed; // run id -> error
  for (auto& [id, log] : st.logs) {
    if (!log.dirty)
      continue;
    try {
      if (st.policy != fsync_policy::none) {
        log.writer.sync();
        ++st.syncs;
      }
      log.dirty = false;
    } catch (const std::exception& e) {
      failed.emplace(id, e.what());
    }
  }
  for (auto& [id, what] : failed)
    st.logs.erase(id);
  auto waiters = std::move(st.waiters);
  st.waiters.clear();
  auto now = steady_ns();
  for (auto& w : waiters) {
    if (auto i = failed.find(w.run_id); i != failed.end()) {
      w.promise.deliver(io_failure(i->second));
    } else {
      observe_latency(st, w.received_ns, now);
      w.promise.deliver(w.seq);
    }
  }
  publish_stats(self);
}

} // namespace

journal_impl::behavior_type journal(self_ptr self, fsync_policy policy,
                                    metric_sink_actor sink,
                                    std::string deadletter_path) {
  self->set_default_handler(undeliverable_handler(std::move(deadletter_path)));
  self->state.policy = policy;
  self->state.sink = std::move(sink);
  return {
    [=](caf::open_atom, const std::string& run_id, const std::string& path,
        uint64_t trusted_offset, uint64_t trusted_seq,
        uint64_t trusted_lines) -> caf::result<uint64_t, std::string> {
      auto& logs = self->state.logs;
      if (auto i = logs.find(run_id); i != logs.end())
        return {i->second.writer.last_seq(), std::string{}};
      try {
        auto writer = event_log_writer::open(
          path, log_position{trusted_offset, trusted_seq, trusted_lines});
        std::string note;
        if (writer.repair().repaired)
          note = writer.repair().reason;
        auto seq = writer.last_seq();
        logs.emplace(run_id, journal_state::open_log{std::move(writer), false, seq});
        return {seq, note};
      } catch (const std::exception& e) {
        return io_failure(e.what());
      }
    },
    [=](append_atom, const std::string& run_id, const std::string& bytes,
        uint64_t seq) -> caf::result<uint64_t> {
      auto& st = self->state;
      auto received = steady_ns();
      auto i = st.logs.find(run_id);
      if (i == st.logs.end())
        return io_failure("journal: log of run '" + run_id + "' is not open");
      try {
        i->second.writer.append(bytes, seq);
      } catch (const std::exception& e) {
        return io_failure(e.what());
      }
      st.appended_bytes += bytes.size();
      st.stats.events += seq - i->second.written_seq;
      i->second.written_seq = seq;
      switch (st.policy) {
        case fsync_policy::none:
          observe_latency(st, received, steady_ns());
          publish_stats(self);
          return seq;
        case fsync_policy::always:
          try {
            i->second.writer.sync();
            ++st.syncs;
          } catch (const std::exception& e) {
            return io_failure(e.what());
          }
          observe_latency(st, received, steady_ns());
          publish_stats(self);
          return seq;
        case fsync_policy::batch:
          break;
      }
      i->second.dirty = true;
      auto rp = self->make_response_promise<uint64_t>();
      st.waiters.push_back({rp, run_id, seq, received});
      if (!st.commit_pending) {
        st.commit_pending = true;
        self->send(self, commit_atom_v);
      }
      return rp;
    },
    [=](commit_atom) { commit(self); },
    [=](caf::close_atom, const std::string& run_id) -> bool {
      commit(self);
      return self->state.logs.erase(run_id) > 0;
    },
  };
}

journal_actor spawn_journal(caf::actor_system& sys, fsync_policy policy,
                            metric_sink_actor sink, std::string deadletter_path) {
  return sys.spawn<caf::detached>(journal, policy, std::move(sink),
                                  std::move(deadletter_path));
}

} // namespace crew
