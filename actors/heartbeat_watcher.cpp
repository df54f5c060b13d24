#include "actors/heartbeat_watcher.hpp"

#include <chrono>

#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/undeliverable.hpp"

namespace crew {

namespace {

using self_ptr = heartbeat_watcher_impl::stateful_pointer<heartbeat_watcher_state>;

int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch())
    .count();
}

} // namespace

void heartbeat_poll(heartbeat_watcher_state& st, int64_t now,
                    std::unordered_map<std::string, std::vector<event_note>>& notes,
                    std::vector<dead_report>& dead) {
  for (auto& [run_id, tasks] : st.runs) {
    auto& out = notes[run_id];
    for (auto& [index, w] : tasks) {
      if (w.pid > 0) {
        // Liveness: a worker that burns CPU is working, output or not.
        auto cpu = process_cpu_ticks(w.pid);
        if (cpu > w.cpu_ticks) {
          w.cpu_ticks = cpu;
          w.last_seen_ms = now;
        }
      }
      auto age = static_cast<uint64_t>(std::max<int64_t>(0, now - w.last_seen_ms));
      auto level = classify(st.options.thresholds, age);
      event_note n;
      n.kind = note_kind::task_heartbeat;
      n.status = static_cast<uint8_t>(level);
      n.task = index;
      n.attempt = w.attempt;
      n.value = age;
      out.push_back(n);
      if (level == heartbeat_level::dead)
        dead.push_back({w.run, index, w.attempt, age, ++w.dead_ticks});
      else
        w.dead_ticks = 0;
    }
  }
}

heartbeat_watcher_impl::behavior_type
heartbeat_watcher(self_ptr self, heartbeat_watcher_options options,
                  metric_sink_actor sink) {
  self->set_default_handler(undeliverable_handler({}));
  self->state.options = options;
  self->state.sink = std::move(sink);
  self->delayed_send(self, std::chrono::milliseconds{options.poll_ms},
                     housekeep_atom_v);
  return {
    [=](watch_atom, caf::actor run, const std::string& run_id, uint32_t index,
        uint32_t attempt, int32_t pid) {
      auto& w = self->state.runs[run_id][index];
      w.run = std::move(run);
      w.attempt = attempt;
      w.pid = pid;
      w.last_seen_ms = steady_ms();
      w.cpu_ticks = pid > 0 ? process_cpu_ticks(pid) : 0;
      w.dead_ticks = 0;
    },
    [=](unwatch_atom, const std::string& run_id, uint32_t index) {
      auto& runs = self->state.runs;
      auto i = runs.find(run_id);
      if (i == runs.end())
        return;
      i->second.erase(index);
      if (i->second.empty())
        runs.erase(i);
    },
    [=](beat_atom, const std::string& run_id, uint32_t index) {
      auto& runs = self->state.runs;
      if (auto i = runs.find(run_id); i != runs.end())
        if (auto j = i->second.find(index); j != i->second.end())
          j->second.last_seen_ms = steady_ms();
    },
    [=](housekeep_atom) {
      auto& st = self->state;
      ++st.ticks;
      std::unordered_map<std::string, std::vector<event_note>> notes;
      std::vector<dead_report> dead;
      heartbeat_poll(st, steady_ms(), notes, dead);
      if (st.sink)
        for (auto& [run_id, xs] : notes)
          if (!xs.empty())
            self->send(st.sink, notes_atom_v, run_id, std::move(xs));
      for (auto& d : dead)
        caf::anon_send(d.run, hbdead_atom_v, d.index, d.attempt, d.elapsed_ms,
                       d.consecutive);
      self->delayed_send(self, std::chrono::milliseconds{st.options.poll_ms},
                         housekeep_atom_v);
    },
  };
}

} // namespace crew
