#include "store/clock.hpp"

#include <doctest/doctest.h>

using namespace crew;
using namespace std::chrono;

namespace {

system_clock::time_point at(int64_t ms) {
  return system_clock::time_point{milliseconds{ms}};
}

} // namespace

TEST_CASE("clock: formats ISO-8601 UTC with milliseconds") {
  // 2026-11-26T01:15:45.123Z
  auto t = sys_days{year{2026} / 11 / 26} + hours{1} + minutes{15} + seconds{45}
           + milliseconds{123};
  CHECK_EQ(iso_time(t), "2026-11-26T01:15:45.123Z");
  CHECK_EQ(iso_time(at(0)), "1970-01-01T00:00:00.000Z");
  CHECK_EQ(iso_time(at(951782400007)), "2000-02-29T00:00:00.007Z");
}

TEST_CASE("clock: the cached prefix follows second and day changes") {
  std::string out;
  append_iso_time(out, at(1700000000999));
  append_iso_time(out, at(1700000001000));
  append_iso_time(out, at(1700006400000 - 1));
  append_iso_time(out, at(1700006400000 + 86400000));
  CHECK_EQ(out, "2023-11-14T22:13:20.999Z"
                "2023-11-14T22:13:21.000Z"
                "2023-11-14T23:59:59.999Z"
                "2023-11-16T00:00:00.000Z");
}

TEST_CASE("clock: iso_now has the expected shape") {
  auto s = iso_now();
  REQUIRE_EQ(s.size(), 24u);
  CHECK_EQ(s[4], '-');
  CHECK_EQ(s[10], 'T');
  CHECK_EQ(s[19], '.');
  CHECK_EQ(s[23], 'Z');
}

TEST_CASE("clock: parse_iso_time reads back what iso_time writes") {
  using namespace std::chrono;
  auto t = system_clock::time_point{milliseconds{1795657245123}};
  system_clock::time_point back;
  REQUIRE(crew::parse_iso_time(crew::iso_time(t), back));
  CHECK(back == t);
  REQUIRE(crew::parse_iso_time("1970-01-01T00:00:00Z", back));
  CHECK(back.time_since_epoch().count() == 0);
  CHECK_FALSE(crew::parse_iso_time("2026-13-01T00:00:00.000Z", back));
  CHECK_FALSE(crew::parse_iso_time("2026-11-26 01:15:45.123Z", back));
  CHECK_FALSE(crew::parse_iso_time("", back));
}

// Review F4: milliseconds beyond the clock's nanosecond range (years after
// 2262) overflowed when converted to a time_point.
TEST_CASE("clock: times outside the clock's range are clamped, not wrapped") {
  using namespace std::chrono;
  CHECK_EQ(iso_time(time_of_unix_ms(INT64_MAX)), "2262-04-11T23:47:16.854Z");
  CHECK_EQ(iso_time(time_of_unix_ms(INT64_MIN)), "1677-09-21T00:12:43.146Z");
  CHECK_EQ(iso_time(time_of_unix_ms(1795657245123)),
           "2026-11-26T01:40:45.123Z");
  system_clock::time_point back;
  REQUIRE(parse_iso_time("9999-12-31T23:59:59.999Z", back));
  CHECK_EQ(iso_time(back), "2262-04-11T23:47:16.854Z");
  CHECK(back > system_clock::time_point{});
  REQUIRE(parse_iso_time("0000-01-01T00:00:00.000Z", back));
  CHECK_EQ(iso_time(back), "1677-09-21T00:12:43.146Z");
}
