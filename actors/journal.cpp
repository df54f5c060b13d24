#include "actors/journal.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errors.hpp"

namespace crew {

namespace {

using self_ptr = journal_impl::stateful_pointer<journal_state>;

caf::error io_failure(const std::string& what) {
  return caf::make_error(caf::sec::runtime_error, what);
}

/// Syncs every dirty log and answers every waiter: the group commit.
void commit(self_ptr self) {
  auto& st = self->state;
  st.commit_pending = false;
  std::string failure;
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
      failure = e.what();
    }
  }
  auto waiters = std::move(st.waiters);
  st.waiters.clear();
  for (auto& w : waiters) {
    if (failure.empty())
      w.promise.deliver(w.seq);
    else
      w.promise.deliver(io_failure(failure));
  }
}

} // namespace

journal_impl::behavior_type journal(self_ptr self, fsync_policy policy) {
  self->state.policy = policy;
  return {
    [=](caf::open_atom, const std::string& run_id,
        const std::string& path) -> caf::result<uint64_t, std::string> {
      auto& logs = self->state.logs;
      if (auto i = logs.find(run_id); i != logs.end())
        return {i->second.writer.last_seq(), std::string{}};
      try {
        auto writer = event_log_writer::open(path);
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
      auto i = st.logs.find(run_id);
      if (i == st.logs.end())
        return io_failure("journal: log of run '" + run_id + "' is not open");
      try {
        i->second.writer.append(bytes, seq);
      } catch (const std::exception& e) {
        return io_failure(e.what());
      }
      st.appended_bytes += bytes.size();
      i->second.written_seq = seq;
      switch (st.policy) {
        case fsync_policy::none:
          return seq;
        case fsync_policy::always:
          try {
            i->second.writer.sync();
            ++st.syncs;
          } catch (const std::exception& e) {
            return io_failure(e.what());
          }
          return seq;
        case fsync_policy::batch:
          break;
      }
      i->second.dirty = true;
      auto rp = self->make_response_promise<uint64_t>();
      st.waiters.push_back({rp, seq});
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

journal_actor spawn_journal(caf::actor_system& sys, fsync_policy policy) {
  return sys.spawn<caf::detached>(journal, policy);
}

} // namespace crew
