// Renders /metrics for 10,000 series (10 families x 1,000 label sets, four
// of them histograms with the default buckets) and prints the median of 20
// renders. Not a test: timing assertions would be flaky on shared CI.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "observability/prometheus.hpp"

int main() {
  using namespace crew;
  metric_registry reg;
  std::vector<family<counter>*> counters;
  std::vector<family<gauge>*> gauges;
  std::vector<family<histogram>*> histograms;
  for (int f = 0; f < 4; ++f)
    counters.push_back(&reg.counter_family(
        "crew.bench.counter_" + std::string(1, char('a' + f)), "Counter."));
  for (int f = 0; f < 2; ++f)
    gauges.push_back(&reg.gauge_family(
        "crew.bench.gauge_" + std::string(1, char('a' + f)), "Gauge."));
  for (int f = 0; f < 4; ++f)
    histograms.push_back(&reg.histogram_family(
        "crew.bench.histogram_" + std::string(1, char('a' + f)), "Histogram."));
  for (int i = 0; i < 1000; ++i) {
    label_set labels{{"run_id", "run-" + std::to_string(i / 10)},
                     {"task_id", "task-" + std::to_string(i)},
                     {"status", i % 7 == 0 ? "fa\"iled" : "completed"}};
    for (auto* c : counters)
      c->add(labels).inc(i);
    for (auto* g : gauges)
      g->add(labels).set(i * 0.5);
    for (auto* h : histograms)
      for (int k = 0; k < 5; ++k)
        h->add(labels).observe((i * 37 + k * 101) % 12000 + 0.25);
  }
  std::vector<double> collect_ms, render_ms, total_ms;
  size_t bytes = 0;
  for (int run = 0; run < 20; ++run) {
    auto t0 = std::chrono::steady_clock::now();
    auto snap = reg.collect();
    auto t1 = std::chrono::steady_clock::now();
    auto text = prometheus_text(snap);
    auto t2 = std::chrono::steady_clock::now();
    bytes = text.size();
    using ms = std::chrono::duration<double, std::milli>;
    collect_ms.push_back(ms(t1 - t0).count());
    render_ms.push_back(ms(t2 - t1).count());
    total_ms.push_back(ms(t2 - t0).count());
  }
  auto median = [](std::vector<double> xs) {
    std::sort(xs.begin(), xs.end());
    return (xs[9] + xs[10]) / 2;
  };
  std::printf("series: 10000, bytes: %zu\n", bytes);
  std::printf("median collect: %.3f ms\n", median(collect_ms));
  std::printf("median render:  %.3f ms\n", median(render_ms));
  std::printf("median collect+render: %.3f ms (budget 10 ms)\n",
              median(total_ms));
}
