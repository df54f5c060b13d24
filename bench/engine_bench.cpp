// Micro-benchmarks of the hot path: event formatting and one scheduler step
// (dispatch + result + durable) of the run engine, without actors.

#include <benchmark/benchmark.h>

#include "runtime/scheduling/planning.hpp"
#include "runtime/scheduling/run_engine.hpp"
#include "store/event_log.hpp"

namespace {

void bm_append_event_line(benchmark::State& state) {
  std::string out;
  crew::event_fields ev;
  ev.type = "task.completed";
  ev.run_id = "team_20261126010101_0123abcd";
  ev.task_id = "t12345";
  ev.data_json = R"({"attempt":1,"exitCode":0,"durationMs":0})";
  ev.time = std::chrono::system_clock::now();
  for (auto _ : state) {
    ev.seq++;
    crew::append_event_line(out, ev);
    if (out.size() > (1 << 20))
      out.clear();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_append_event_line);

void bm_engine_fanout(benchmark::State& state) {
  auto n = static_cast<uint32_t>(state.range(0));
  auto plan = crew::synthetic_plan(crew::graph_shape::fanout, n, 1);
  for (auto _ : state) {
    crew::engine_options opts;
    opts.max_concurrent = 256;
    opts.runtime = "sim";
    crew::run_engine eng{"bench", plan, 1, opts};
    eng.start("bench", false);
    std::vector<uint32_t> ready;
    while (!eng.finished()) {
      ready.clear();
      eng.next_dispatch(ready);
      for (auto i : ready) {
        crew::attempt_result res;
        res.index = i;
        res.attempt = eng.tasks()[i].attempt;
        res.ok = true;
        res.exit_code = 0;
        eng.on_result(res);
      }
      benchmark::DoNotOptimize(eng.take_events());
      eng.on_durable(eng.last_seq());
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(bm_engine_fanout)->Arg(100000)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
