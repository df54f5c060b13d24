#include "observability/metrics.hpp"

#include <cmath>
#include <map>
#include <string>
#include <stdexcept>
#include <thread>

#include <doctest/doctest.h>

using namespace crew;

TEST_CASE("counter: increments by one or by a delta") {
  counter c;
  CHECK(c.value() == 0);
  c.inc();
  c.inc(2.5);
  CHECK(c.value() == 3.5);
}

TEST_CASE("counter: ignores non-finite and negative deltas") {
  counter c;
  c.inc(NAN);
  c.inc(INFINITY);
  c.inc(-INFINITY);
  c.inc(-1);
  CHECK(c.value() == 0);
}

TEST_CASE("gauge: sets and adds, ignoring non-finite values") {
  gauge g;
  g.set(5);
  g.add(-7);
  CHECK(g.value() == -2);
  g.set(NAN);
  g.add(INFINITY);
  CHECK(g.value() == -2);
}

TEST_CASE("histogram: uses pi-crew's default buckets") {
  histogram h;
  CHECK(h.bounds()
        == std::vector<double>{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
                               5000, 10000});
  CHECK(h.bucket_counts().size() == 14);
}

TEST_CASE("histogram: sorts and de-duplicates bounds") {
  histogram h{{5, 1, 2, 2, 1}};
  CHECK(h.bounds() == std::vector<double>{1, 2, 5});
}

TEST_CASE("histogram: rejects non-finite bounds") {
  CHECK_THROWS_AS(histogram({1, NAN}), std::invalid_argument);
  CHECK_THROWS_AS(histogram({1, INFINITY}), std::invalid_argument);
}

TEST_CASE("histogram: a value goes to the first bucket with value <= bound") {
  histogram h{{1, 2, 5}};
  h.observe(0.5);
  h.observe(1);
  h.observe(1.5);
  h.observe(5);
  h.observe(7);
  h.observe(NAN);
  CHECK(h.bucket_counts() == std::vector<uint64_t>{2, 1, 1, 1});
  CHECK(h.count() == 5);
  CHECK(h.sum() == doctest::Approx(15));
  auto s = h.collect();
  CHECK(s.count == 5);
  CHECK(s.bounds == h.bounds());
  CHECK(s.sum == doctest::Approx(15));
}

TEST_CASE("histogram: concurrent observations lose nothing") {
  histogram h{{10}};
  counter c;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        h.observe(i % 20);
        c.inc();
      }
    });
  for (auto& t : threads)
    t.join();
  CHECK(h.count() == 40000);
  CHECK(c.value() == 40000);
}

TEST_CASE("bucket_quantile: NaN without data") {
  CHECK(std::isnan(bucket_quantile({1, 2}, {0, 0, 0}, 0, 0, 0.5)));
  CHECK(std::isnan(bucket_quantile({1, 2}, {1, 0}, 1, 1, 0.5)));
}

TEST_CASE("bucket_quantile: interpolates linearly inside the bucket") {
  // bounds 10, 20; 4 values in (0,10], 4 in (10,20].
  std::vector<double> b{10, 20};
  std::vector<uint64_t> c{4, 4, 0};
  // q=0.5: target 4 -> first bucket, 0 + (4/4)*10 = 10.
  CHECK(bucket_quantile(b, c, 100, 8, 0.5) == doctest::Approx(10));
  // q=0.75: target 6 -> second bucket, 10 + (2/4)*10 = 15.
  CHECK(bucket_quantile(b, c, 100, 8, 0.75) == doctest::Approx(15));
  // q=0.25: target 2 -> 0 + (2/4)*10 = 5.
  CHECK(bucket_quantile(b, c, 100, 8, 0.25) == doctest::Approx(5));
}

TEST_CASE("bucket_quantile: target is at least one and q is clamped") {
  std::vector<double> b{10, 20};
  std::vector<uint64_t> c{4, 4, 0};
  // q=0 -> target max(1, 0) = 1 -> 0 + (1/4)*10.
  CHECK(bucket_quantile(b, c, 100, 8, 0) == doctest::Approx(2.5));
  CHECK(bucket_quantile(b, c, 100, 8, -3) == doctest::Approx(2.5));
  CHECK(bucket_quantile(b, c, 100, 8, 7) == doctest::Approx(20));
}

TEST_CASE("bucket_quantile: overflow upper edge is max(lower, sum/count)") {
  std::vector<double> b{10};
  // Two values of 50 in the overflow: mean 50 -> interpolate 10..50.
  CHECK(bucket_quantile(b, {0, 2}, 100, 2, 1) == doctest::Approx(50));
  CHECK(bucket_quantile(b, {0, 2}, 100, 2, 0.5) == doctest::Approx(30));
  // Mean below the last bound: upper = lower.
  CHECK(bucket_quantile(b, {9, 1}, 20, 10, 1) == doctest::Approx(10));
}

TEST_CASE("bucket_quantile: quantile of a sample uses its buckets") {
  histogram h{{1, 2, 5}};
  for (double v : {0.5, 1.5, 1.5, 4.0})
    h.observe(v);
  auto s = h.collect();
  // target 2 -> bucket (1,2] holding 2, prev 1 -> 1 + (1/2)*1.
  CHECK(quantile(s, 0.5) == doctest::Approx(1.5));
}

TEST_CASE("family: add returns a stable reference per label set") {
  family<counter> f{"crew.run.count", "Runs"};
  auto& a = f.add({{"status", "completed"}});
  auto& b = f.add({{"status", "failed"}});
  for (int i = 0; i < 100; ++i)
    f.add({{"status", std::to_string(i)}});
  a.inc();
  CHECK(&f.add({{"status", "completed"}}) == &a);
  CHECK(&b != &a);
  CHECK(f.add({{"status", "completed"}}).value() == 1);
  CHECK(f.size() == 102);
}

TEST_CASE("family: label order does not change identity") {
  family<gauge> f{"crew.heartbeat.staleness_ms", "Staleness"};
  auto& a = f.add({{"taskId", "t1"}, {"runId", "r1"}});
  CHECK(&f.add({{"runId", "r1"}, {"taskId", "t1"}}) == &a);
  CHECK(f.has({{"taskId", "t1"}, {"runId", "r1"}}));
  auto snap = f.collect();
  REQUIRE(snap.samples.size() == 1);
  CHECK(snap.samples[0].labels == label_set{{"runId", "r1"}, {"taskId", "t1"}});
}

TEST_CASE("family: remove drops a series") {
  family<counter> f{"crew.run.count", "Runs"};
  f.add({{"status", "x"}});
  CHECK(f.has({{"status", "x"}}));
  f.remove({{"status", "x"}});
  CHECK(!f.has({{"status", "x"}}));
  CHECK(f.collect().samples.empty());
}

TEST_CASE("family: rejects invalid and duplicate label names") {
  family<counter> f{"crew.run.count", "Runs"};
  CHECK_THROWS_AS(f.add({{"__reserved", "x"}}), std::invalid_argument);
  CHECK_THROWS_AS(f.add({{"bad-name", "x"}}), std::invalid_argument);
  CHECK_THROWS_AS(f.add({{"9x", "x"}}), std::invalid_argument);
  CHECK_THROWS_AS(f.add({{"a", "1"}, {"a", "2"}}), std::invalid_argument);
  CHECK(f.size() == 0);
}

TEST_CASE("family: label refs and label sets name the same series") {
  family<counter> f{"crew.task.retry_attempt_total", "Retries"};
  std::string run = "loadtest_20261126031919_abcdef01"; // beyond SSO
  auto& a = f.add({{"runId", run}, {"taskId", "t1"}});
  CHECK(&f.add(label_set{{"taskId", "t1"}, {"runId", run}}) == &a);
  CHECK(&f.add({{"taskId", "t1"}, {"runId", run}}) == &a);
  CHECK(f.has({{"runId", run}, {"taskId", "t1"}}));
  CHECK(!f.has({{"runId", run}, {"taskId", "t2"}}));
  // more labels than the key keeps on the stack, unsorted
  auto& b = f.add({{"e", "5"}, {"c", "3"}, {"a", "1"}, {"d", "4"}, {"b", "2"}});
  CHECK(&f.add(label_set{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"},
                         {"e", "5"}})
        == &b);
  CHECK(f.size() == 2);
  auto snap = f.collect();
  REQUIRE(snap.samples.size() == 2);
  CHECK(snap.samples[0].labels
        == label_set{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"e", "5"}});
  CHECK(snap.samples[1].labels == label_set{{"runId", run}, {"taskId", "t1"}});
}

TEST_CASE("family: collect orders series by labels across adds and removes") {
  family<gauge> f{"crew.heartbeat.staleness_ms", "Staleness"};
  std::map<label_set, double> expected;
  auto put = [&](std::string run, std::string task, double x) {
    f.add({{"runId", run}, {"taskId", task}}).set(x);
    expected[label_set{{"runId", run}, {"taskId", task}}] = x;
  };
  auto check = [&] {
    auto snap = f.collect();
    REQUIRE(snap.samples.size() == expected.size());
    size_t i = 0;
    for (auto& [labels, value] : expected) {
      CHECK(snap.samples[i].labels == labels);
      CHECK(snap.samples[i].value == value);
      ++i;
    }
  };
  auto id = [](char prefix, int i) {
    std::string result(1, prefix);
    result += std::to_string(i);
    return result;
  };
  for (int i = 0; i < 50; ++i)
    put(id('r', i % 3), id('t', (i * 37) % 50), i);
  check();
  for (int i = 50; i < 80; ++i)
    put(id('r', i % 4), id('t', (i * 11) % 60), i);
  f.remove({{"runId", "r1"}, {"taskId", "t37"}});
  expected.erase(label_set{{"runId", "r1"}, {"taskId", "t37"}});
  f.remove({{"runId", "r3"}, {"taskId", "t11"}});
  expected.erase(label_set{{"runId", "r3"}, {"taskId", "t11"}});
  check();
  check(); // a second snapshot sorts nothing and gives the same
}

TEST_CASE("family: random adds and removes match a map model") {
  family<counter> f{"crew.task.retry_attempt_total", "Retries"};
  std::map<label_set, family<counter>*> model; // presence only
  uint64_t state = 42;
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33);
  };
  auto labels_of = [](uint32_t i) {
    std::string task(1, 't');
    task += std::to_string(i);
    return label_set{{"runId", "r"}, {"taskId", task}};
  };
  for (int op = 0; op < 5000; ++op) {
    auto key = labels_of(next() % 300);
    if (next() % 3 == 0) {
      f.remove(key);
      model.erase(key);
    } else {
      f.add(key).inc();
      model[key] = &f;
    }
    if (op % 500 == 499) {
      for (uint32_t i = 0; i < 300; ++i)
        CHECK(f.has(labels_of(i)) == (model.count(labels_of(i)) != 0));
      auto snap = f.collect();
      REQUIRE(snap.samples.size() == model.size());
      size_t i = 0;
      for (auto& kv : model)
        CHECK(snap.samples[i++].labels == kv.first);
    }
  }
  CHECK(f.size() == model.size());
}

TEST_CASE("family: an invalid label name is reported in the caller's order") {
  family<counter> f{"crew.run.count", "Runs"};
  try {
    f.add({{"z-bad", "x"}, {"a-bad", "y"}});
    FAIL("expected std::invalid_argument");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string{e.what()}.find("'z-bad'") != std::string::npos);
  }
  CHECK(f.size() == 0);
}

TEST_CASE("histogram: more buckets than the object holds inline") {
  std::vector<double> bounds;
  for (int i = 20; i > 0; --i)
    bounds.push_back(i);
  histogram h{bounds};
  REQUIRE(h.bounds().size() == 20);
  h.observe(0.5);
  h.observe(20);
  h.observe(21);
  auto counts = h.bucket_counts();
  REQUIRE(counts.size() == 21);
  CHECK(counts[0] == 1);
  CHECK(counts[19] == 1);
  CHECK(counts[20] == 1);
  CHECK(h.count() == 3);
  family<histogram> f{"crew.task.duration_ms", "D", bounds};
  f.add({{"role", "x"}}).observe(3);
  CHECK(f.collect().samples[0].bucket_counts[2] == 1);
}

TEST_CASE("family: histogram series share the family's bounds") {
  family<histogram> f{"crew.task.retry_count", "Retries", {0, 1, 2, 3, 5, 10}};
  auto& h = f.add({{"team", "t"}});
  CHECK(h.bounds() == std::vector<double>{0, 1, 2, 3, 5, 10});
  h.observe(2);
  auto snap = f.collect();
  CHECK(snap.type == metric_type::histogram);
  REQUIRE(snap.samples.size() == 1);
  CHECK(snap.samples[0].bucket_counts
        == std::vector<uint64_t>{0, 0, 1, 0, 0, 0, 0});
  CHECK(snap.samples[0].count == 1);
}

TEST_CASE("metric_registry: get-or-create returns the same family") {
  metric_registry reg;
  auto& a = reg.counter_family("crew.run.count", "Runs");
  auto& b = reg.counter_family("crew.run.count", "other help");
  CHECK(&a == &b);
  CHECK(a.help() == "Runs");
}

TEST_CASE("metric_registry: a name registered with another type throws") {
  metric_registry reg;
  reg.counter_family("crew.run.count", "Runs");
  CHECK_THROWS_AS(reg.gauge_family("crew.run.count", "x"),
                  std::invalid_argument);
  CHECK_THROWS_AS(reg.histogram_family("crew.run.count", "x"),
                  std::invalid_argument);
}

TEST_CASE("metric_registry: invalid names throw naming the metric") {
  metric_registry reg;
  try {
    reg.counter_family("crew.Run.count", "x");
    FAIL("expected std::invalid_argument");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string{e.what()}.find("crew.Run.count") != std::string::npos);
  }
  CHECK_THROWS_AS(reg.gauge_family("run_count", "x"), std::invalid_argument);
  CHECK_THROWS_AS(reg.histogram_family("crew.run", "x"), std::invalid_argument);
  CHECK(reg.collect().empty());
}

TEST_CASE("metric_registry: the first histogram creator's bounds win") {
  metric_registry reg;
  auto& a = reg.histogram_family("crew.task.retry_count", "R", {3, 1, 2});
  auto& b = reg.histogram_family("crew.task.retry_count", "R", {100});
  CHECK(&a == &b);
  CHECK(b.bounds() == std::vector<double>{1, 2, 3});
  CHECK_THROWS_AS(reg.histogram_family("crew.task.other", "R", {NAN}),
                  std::invalid_argument);
}

TEST_CASE("metric_registry: collect preserves registration order") {
  metric_registry reg;
  reg.histogram_family("crew.run.duration_ms", "D")
      .add({{"team", "a"}})
      .observe(3);
  reg.counter_family("crew.run.count", "Runs").add({{"status", "done"}}).inc(2);
  reg.gauge_family("crew.heartbeat.staleness_ms", "S").add({}).set(7);
  auto snap = reg.collect();
  REQUIRE(snap.size() == 3);
  CHECK(snap[0].name == "crew.run.duration_ms");
  CHECK(snap[0].type == metric_type::histogram);
  CHECK(snap[0].samples[0].count == 1);
  CHECK(snap[0].samples[0].bounds == default_buckets());
  CHECK(snap[1].name == "crew.run.count");
  CHECK(snap[1].type == metric_type::counter);
  CHECK(snap[1].samples[0].value == 2);
  CHECK(snap[2].type == metric_type::gauge);
  CHECK(snap[2].samples[0].labels.empty());
  CHECK(snap[2].samples[0].value == 7);
}
