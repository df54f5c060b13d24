#include "observability/retention.hpp"

#include <cmath>
#include <stdexcept>

#include <doctest/doctest.h>

using namespace crew;
using namespace std::chrono_literals;

namespace {

time_windowed_counter::time_point at(std::chrono::milliseconds t) {
  return time_windowed_counter::time_point{} + 1000h + t;
}

} // namespace

TEST_CASE("time_windowed_counter: sums values inside the window") {
  time_windowed_counter c{60s, 60};
  c.add(1, at(0s));
  c.add(2, at(10s));
  c.add(3, at(59s));
  CHECK(c.sum(at(59s)) == 6);
  CHECK(c.rate_per_second(at(59s)) == doctest::Approx(0.1));
}

TEST_CASE("time_windowed_counter: prunes values older than the window") {
  time_windowed_counter c{60s, 60};
  c.add(1, at(0s));
  c.add(2, at(30s));
  CHECK(c.sum(at(60s)) == 2);
  CHECK(c.sum(at(89s)) == 2);
  CHECK(c.sum(at(90s)) == 0);
  // A bucket slot reused after a full lap starts from zero.
  c.add(5, at(120s));
  CHECK(c.sum(at(120s)) == 5);
}

TEST_CASE("time_windowed_counter: sums a shorter duration") {
  time_windowed_counter c{1h, 60};
  c.add(1, at(0min));
  c.add(2, at(30min));
  c.add(4, at(55min));
  CHECK(c.sum(at(59min), 10min) == 4);
  CHECK(c.sum(at(59min), 40min) == 6);
  CHECK(c.sum(at(59min), 2h) == 7);
  CHECK(c.sum(at(59min), 0ms) == 0);
}

TEST_CASE("time_windowed_counter: ignores non-finite and too-old values") {
  time_windowed_counter c{10s, 10};
  c.add(NAN, at(0s));
  c.add(INFINITY, at(0s));
  c.add(1, at(20s));
  c.add(100, at(10s)); // same ring slot as 20s, a full window older
  CHECK(c.sum(at(20s)) == 1);
}

TEST_CASE("time_windowed_counter: reading is free of side effects") {
  time_windowed_counter c{10s, 10};
  c.add(3, at(5s));
  CHECK(c.sum(at(100s)) == 0);
  CHECK(c.sum(at(5s)) == 3);
}

TEST_CASE("time_windowed_counter: rejects degenerate configurations") {
  CHECK_THROWS_AS(time_windowed_counter(10s, 0), std::invalid_argument);
  CHECK_THROWS_AS(time_windowed_counter(5ms, 10), std::invalid_argument);
}
