// The embedding API (include/crew/crew.hpp). Lives in the crew_core target,
// above the actors it wires together.

#include "crew/crew.hpp"

#include <chrono>
#include <algorithm>
#include <optional>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/node.hpp"
#include "messages/errors.hpp"

namespace crew {

namespace {

caf::actor_system_config& configure(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::crew>();
  cfg.set("logger.console", caf::atom("none"));
  // Work sharing: idle workers block on one condition variable until a job
  // is enqueued, instead of CAF's default work stealing, whose idle workers
  // poll (100 aggressive attempts, then naps of 50 us and then 10 ms, 100
  // wake-ups a second each). A run of pi agents is mostly idle between
  // messages from its worker threads: the naps cost ~5 ms of CPU per second
  // (~4 ms per task in spawn mode, bench/pi_modes.sh), and a message from a
  // worker thread wakes a blocked worker at once. Measured with the 100,000-
  // task load test: throughput unchanged (median of 7, 719k vs 712k tasks/s
  // stealing), cross-thread request/response rate 3.5x higher. (Zeek
  // switched its CAF default to sharing for the same reason, zeek/zeek#447.)
  cfg.set("scheduler.policy", caf::atom("sharing"));
  // CAF starts at least 4 workers. Blocking work runs on threads of its own
  // (task workers, the journal), so one worker per core is enough.
  cfg.set("scheduler.max-threads",
          size_t{std::max(2u, std::thread::hardware_concurrency())});
  return cfg;
}

} // namespace

struct runtime::impl {
  caf::actor_system_config cfg;
  std::optional<caf::actor_system> own;
  caf::actor_system* sys = nullptr;
  node_actor node;

  explicit impl(node_options options) {
    own.emplace(configure(cfg));
    sys = &*own;
    node = sys->spawn(crew::node, std::move(options));
  }

  impl(caf::actor_system& s, node_options options) : sys(&s) {
    node = sys->spawn(crew::node, std::move(options));
  }

  ~impl() {
    caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
  }
};

namespace {

node_options with_fsync(fsync_policy policy) {
  node_options out;
  out.fsync = policy;
  return out;
}

} // namespace

runtime::runtime(fsync_policy policy)
  : impl_(std::make_unique<impl>(with_fsync(policy))) {
  // nop
}

runtime::runtime(node_options options)
  : impl_(std::make_unique<impl>(std::move(options))) {
  // nop
}

runtime::runtime(caf::actor_system& sys, node_options options)
  : impl_(std::make_unique<impl>(sys, std::move(options))) {
  // nop
}

std::vector<metric_family> runtime::metrics() {
  caf::scoped_actor self{*impl_->sys};
  std::vector<metric_family> out;
  metric_sink_actor sink;
  self->request(impl_->node, caf::infinite, caf::get_atom_v)
    .receive([&](metric_sink_actor s) { sink = std::move(s); },
             [](const caf::error&) {});
  if (!sink)
    return out;
  self->request(sink, caf::infinite, caf::get_atom_v)
    .receive([&](metrics_snapshot snap) {
      if (snap)
        out = *snap;
    },
    [](const caf::error&) {});
  return out;
}

runtime::~runtime() = default;

run_progress runtime::execute(run_setup_ptr setup,
                              const std::function<void(const run_progress&)>& on_progress,
                              const std::atomic<bool>* interrupt) {
  caf::scoped_actor self{*impl_->sys};
  run_actor handle;
  self->request(impl_->node, caf::infinite, start_atom_v, std::move(setup),
                caf::actor{self})
    .receive([&](run_actor h) { handle = std::move(h); },
             [&](const caf::error& err) {
               throw io_error("cannot start the run: " + to_string(err));
             });
  self->monitor(handle);
  run_progress last;
  bool done = false;
  bool cancel_sent = false;
  auto check_interrupt = [&] {
    if (interrupt != nullptr && interrupt->load() && !cancel_sent) {
      cancel_sent = true;
      self->send(handle, cancel_atom_v);
    }
  };
  while (!done) {
    // The run reports progress every second; the timeout only matters when
    // it does not (an interrupt is looked at after every message).
    self->receive(
      [&](progress_atom, const run_progress& p) {
        last = p;
        if (on_progress)
          on_progress(p);
      },
      [&](finished_atom, const run_progress& p) {
        last = p;
        done = true;
      },
      [&](const caf::down_msg& dm) {
        if (!done) {
          last.finished = true;
          if (last.status.rfind("error", 0) != 0)
            last.status = "error: run actor stopped: " + to_string(dm.reason);
          done = true;
        }
      },
      caf::after(std::chrono::milliseconds{250}) >> [] {
        // nop: check_interrupt follows
      });
    if (!done)
      check_interrupt();
  }
  return last;
}

void runtime::ingest(const std::string& run_id, const std::string& team,
                     std::shared_ptr<const std::vector<planned_task>> plan,
                     std::vector<event_note> notes) {
  caf::scoped_actor self{*impl_->sys};
  metric_sink_actor sink;
  self->request(impl_->node, caf::infinite, caf::get_atom_v)
    .receive([&](metric_sink_actor s) { sink = std::move(s); },
             [](const caf::error&) {});
  if (!sink)
    return;
  if (plan)
    self->send(sink, track_atom_v, run_id, team, std::move(plan));
  self->send(sink, notes_atom_v, run_id, std::move(notes));
}

double runtime::message_rate_baseline(uint64_t messages) {
  // Two actors bounce batches of 256 sim_job values, as the run actor and
  // the worker pool do; counts individual jobs.
  using namespace std::chrono;
  constexpr uint64_t batch = 256;
  auto rounds = std::max<uint64_t>(1, messages / batch);
  auto echo = impl_->sys->spawn([](caf::event_based_actor*) -> caf::behavior {
    return {
      [](dispatch_atom, std::vector<sim_job>& jobs) { return jobs; },
    };
  });
  caf::scoped_actor self{*impl_->sys};
  std::vector<sim_job> jobs(batch);
  auto start = steady_clock::now();
  for (uint64_t i = 0; i < rounds; ++i)
    self->request(echo, caf::infinite, dispatch_atom_v, jobs)
      .receive([&](std::vector<sim_job>& x) { jobs = std::move(x); },
               [](const caf::error&) {});
  auto secs = duration<double>(steady_clock::now() - start).count();
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  return static_cast<double>(rounds * batch * 2) / secs;
}

} // namespace crew
