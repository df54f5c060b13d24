#include "runtime/workers/sim.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <doctest/doctest.h>

using namespace crew;

TEST_CASE("sim_decide is deterministic for equal inputs") {
  sim_params params;
  params.latency_ms = 50;
  params.fail_rate = 0.3;
  params.seed = 42;
  for (uint64_t task = 0; task < 100; ++task) {
    auto a = sim_decide(params, task, 1);
    auto b = sim_decide(params, task, 1);
    CHECK_EQ(a.kind, b.kind);
    CHECK_EQ(a.latency_us, b.latency_us);
  }
}

TEST_CASE("sim_decide varies with attempt, task and seed") {
  sim_params params;
  params.latency_ms = 50;
  size_t attempt_diff = 0, task_diff = 0, seed_diff = 0;
  auto other_seed = params;
  other_seed.seed = 2;
  for (uint64_t task = 0; task < 100; ++task) {
    auto base = sim_decide(params, task, 1);
    attempt_diff += sim_decide(params, task, 2).latency_us != base.latency_us;
    task_diff += sim_decide(params, task + 1, 1).latency_us != base.latency_us;
    seed_diff += sim_decide(other_seed, task, 1).latency_us != base.latency_us;
  }
  CHECK(attempt_diff >= 95);
  CHECK(task_diff >= 95);
  CHECK(seed_diff >= 95);
}

TEST_CASE("sim_decide hits configured rates within tolerance") {
  sim_params params;
  params.fail_rate = 0.1;
  params.hang_rate = 0.05;
  params.crash_rate = 0.02;
  params.seed = 7;
  constexpr uint64_t n = 100000;
  uint64_t counts[5] = {};
  for (uint64_t task = 0; task < n; ++task)
    ++counts[static_cast<int>(sim_decide(params, task, 1).kind)];
  auto rate = [&](sim_kind k) {
    return static_cast<double>(counts[static_cast<int>(k)]) / n;
  };
  CHECK(rate(sim_kind::failure) > 0.09);
  CHECK(rate(sim_kind::failure) < 0.11);
  CHECK(rate(sim_kind::hang) > 0.045);
  CHECK(rate(sim_kind::hang) < 0.055);
  CHECK(rate(sim_kind::crash) > 0.017);
  CHECK(rate(sim_kind::crash) < 0.023);
  CHECK(rate(sim_kind::success) > 0.82);
  CHECK(rate(sim_kind::success) < 0.84);
}

TEST_CASE("sim_decide retries draw fresh outcomes") {
  sim_params params;
  params.fail_rate = 0.5;
  uint64_t both_failed = 0;
  constexpr uint64_t n = 20000;
  for (uint64_t task = 0; task < n; ++task)
    both_failed += sim_decide(params, task, 1).kind == sim_kind::failure
                   && sim_decide(params, task, 2).kind == sim_kind::failure;
  auto rate = static_cast<double>(both_failed) / n;
  CHECK(rate > 0.23);
  CHECK(rate < 0.27);
}

TEST_CASE("sim_decide with zero rates and zero latency always succeeds now") {
  sim_params params;
  for (uint64_t task = 0; task < 1000; ++task) {
    auto out = sim_decide(params, task, 1);
    CHECK_EQ(out.kind, sim_kind::success);
    CHECK_EQ(out.latency_us, 0u);
  }
  params.fail_rate = 1.0;
  CHECK_EQ(sim_decide(params, 3, 1).kind, sim_kind::failure);
}

TEST_CASE("sim_decide latency stays in range with the configured mean") {
  sim_params params;
  params.latency_ms = 20;
  params.latency_jitter = 0.5;
  constexpr uint64_t n = 100000;
  double sum = 0;
  uint64_t lo = UINT64_MAX, hi = 0;
  for (uint64_t task = 0; task < n; ++task) {
    auto us = sim_decide(params, task, 1).latency_us;
    sum += static_cast<double>(us);
    lo = std::min(lo, us);
    hi = std::max(hi, us);
  }
  auto mean_ms = sum / n / 1000.0;
  CHECK(std::abs(mean_ms - 20.0) < 0.2);
  CHECK(lo >= 10000u);
  CHECK(hi <= 30000u);
  CHECK(lo < 10200u);
  CHECK(hi > 29800u);
  params.latency_jitter = 0;
  CHECK_EQ(sim_decide(params, 5, 1).latency_us, 20000u);
}

TEST_CASE("sim_kind names") {
  CHECK_EQ(std::string{to_string(sim_kind::success)}, "success");
  CHECK_EQ(std::string{to_string(sim_kind::crash)}, "crash");
}
