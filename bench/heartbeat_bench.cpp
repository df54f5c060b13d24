// CPU cost of the heartbeat watcher: 10,000 running attempts watched at a
// 1 s poll, through the real watcher and metric sink actors, against the
// idle node measured in the same run. Prints % of one core.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <sys/resource.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/heartbeat_watcher.hpp"
#include "actors/metric_sink.hpp"
#include "runtime/scheduling/planning.hpp"

using namespace std::chrono;

namespace {

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
         + static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/// Share of one core used by the process over `secs` seconds.
double measure(double secs) {
  auto c0 = cpu_seconds();
  auto t0 = steady_clock::now();
  std::this_thread::sleep_for(duration<double>(secs));
  auto wall = duration<double>(steady_clock::now() - t0).count();
  return (cpu_seconds() - c0) / wall * 100;
}

} // namespace

int main(int argc, char** argv) {
  uint32_t tasks = argc > 1 ? static_cast<uint32_t>(std::atoi(argv[1])) : 10000;
  double secs = argc > 2 ? std::atof(argv[2]) : 10;
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::crew>();
  caf::actor_system sys{cfg};
  crew::metric_sink_options mopts; // registry only, no exports
  auto sink = sys.spawn(crew::metric_sink, mopts, std::string{});
  crew::heartbeat_watcher_options wopts;
  wopts.poll_ms = 1000;
  auto watcher = sys.spawn(crew::heartbeat_watcher, wopts, sink);
  auto idle = measure(secs);
  {
    caf::scoped_actor self{sys};
    // The sink knows the run's plan, as for a real run: one series per task.
    self->send(sink, crew::track_atom_v, std::string{"bench-run"},
               std::string{"bench"},
               crew::plan_ptr{std::make_shared<std::vector<crew::planned_task>>(
                 crew::synthetic_plan(crew::graph_shape::fanout, tasks, 1))});
    caf::actor run = self; // dead reports go nowhere useful; none expected
    for (uint32_t i = 0; i < tasks; ++i)
      self->send(watcher, crew::watch_atom_v, run, std::string{"bench-run"}, i,
                 uint32_t{1}, int32_t{0});
  }
  auto watched = measure(secs);
  size_t series = 0;
  {
    caf::scoped_actor self{sys};
    self->request(sink, caf::infinite, caf::get_atom_v)
      .receive(
        [&](const crew::metrics_snapshot& snap) {
          for (auto& f : *snap)
            if (f.name == "crew.heartbeat.staleness_ms")
              series = f.samples.size();
        },
        [](const caf::error&) {});
  }
  std::printf("heartbeat watcher, %u simulated running attempts, 1 s poll, %.0f s:\n"
              "  idle node       %.2f %% of one core\n"
              "  with watches    %.2f %% of one core\n"
              "  watcher cost    %.2f %% of one core (target <= 5 %%)\n"
              "  staleness series in the metric sink: %zu\n",
              tasks, secs, idle, watched, watched - idle, series);
  caf::anon_send_exit(watcher, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  return 0;
}
