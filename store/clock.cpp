#include "store/clock.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace crew {

namespace {

void put2(char* p, unsigned v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

// Writes `YYYY-MM-DDTHH:MM:SS.` (20 chars) for the given second since epoch.
void format_prefix(char* p, int64_t secs) {
  using namespace std::chrono;
  auto tp = sys_seconds{seconds{secs}};
  auto day = floor<days>(tp);
  year_month_day ymd{day};
  hh_mm_ss hms{tp - day};
  auto y = static_cast<int>(ymd.year());
  // JS prints 4 digits for years 0..9999; other years are out of scope here.
  unsigned uy = y < 0 ? 0u : static_cast<unsigned>(y) % 10000;
  put2(p, uy / 100);
  put2(p + 2, uy % 100);
  p[4] = '-';
  put2(p + 5, static_cast<unsigned>(ymd.month()));
  p[7] = '-';
  put2(p + 8, static_cast<unsigned>(ymd.day()));
  p[10] = 'T';
  put2(p + 11, static_cast<unsigned>(hms.hours().count()));
  p[13] = ':';
  put2(p + 14, static_cast<unsigned>(hms.minutes().count()));
  p[16] = ':';
  put2(p + 17, static_cast<unsigned>(hms.seconds().count()));
  p[19] = '.';
}

struct prefix_cache {
  int64_t secs = INT64_MIN;
  char text[20];
};

} // namespace

void append_iso_time(std::string& out,
                     std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  thread_local prefix_cache cache;
  auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  // floor division: times before 1970 still get a 0..999 millisecond part
  int64_t secs = ms / 1000;
  int64_t rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    --secs;
  }
  if (secs != cache.secs) {
    format_prefix(cache.text, secs);
    cache.secs = secs;
  }
  char buf[24];
  std::memcpy(buf, cache.text, 20);
  auto r = static_cast<unsigned>(rem);
  buf[20] = static_cast<char>('0' + r / 100);
  buf[21] = static_cast<char>('0' + r / 10 % 10);
  buf[22] = static_cast<char>('0' + r % 10);
  buf[23] = 'Z';
  out.append(buf, 24);
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  std::string out;
  out.reserve(24);
  append_iso_time(out, t);
  return out;
}

std::chrono::system_clock::time_point
time_of_unix_ms(int64_t unix_ms) noexcept {
  using namespace std::chrono;
  using tp = system_clock::time_point;
  // Truncation toward zero keeps both limits inside the clock's range.
  constexpr auto max_ms = duration_cast<milliseconds>(tp::duration::max()).count();
  constexpr auto min_ms = duration_cast<milliseconds>(tp::duration::min()).count();
  return tp{duration_cast<tp::duration>(
    milliseconds{std::clamp<int64_t>(unix_ms, min_ms, max_ms)})};
}

std::string iso_now() {
  return iso_time(std::chrono::system_clock::now());
}

namespace {

bool digits(std::string_view s, size_t pos, size_t n, int& out) noexcept {
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (i >= s.size() || s[i] < '0' || s[i] > '9')
      return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
int64_t days_from_civil(int y, int m, int d) noexcept {
  y -= m <= 2;
  auto era = (y >= 0 ? y : y - 399) / 400;
  auto yoe = static_cast<unsigned>(y - era * 400);
  auto doy = (153u * static_cast<unsigned>(m + (m > 2 ? -3 : 9)) + 2) / 5
             + static_cast<unsigned>(d) - 1;
  auto doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<int64_t>(era) * 146097 + static_cast<int64_t>(doe) - 719468;
}

} // namespace

bool parse_iso_time(std::string_view s,
                    std::chrono::system_clock::time_point& out) noexcept {
  int y, mo, d, h, mi, sec, ms = 0;
  if (s.size() < 20 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo)
      || s[7] != '-' || !digits(s, 8, 2, d) || s[10] != 'T' || !digits(s, 11, 2, h)
      || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':'
      || !digits(s, 17, 2, sec))
    return false;
  size_t pos = 19;
  if (s[pos] == '.') {
    if (!digits(s, pos + 1, 3, ms))
      return false;
    pos += 4;
  }
  if (pos + 1 != s.size() || s[pos] != 'Z' || mo < 1 || mo > 12 || d < 1
      || d > 31 || h > 23 || mi > 59 || sec > 60)
    return false;
  auto days = days_from_civil(y, mo, d);
  auto total_ms = ((days * 24 + h) * 60 + mi) * 60'000 + sec * 1000 + ms;
  // Years after 2262 do not fit the clock's nanoseconds: clamped.
  out = time_of_unix_ms(total_ms);
  return true;
}

} // namespace crew
