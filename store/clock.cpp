#include "store/clock.hpp"

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

std::string iso_now() {
  return iso_time(std::chrono::system_clock::now());
}

} // namespace crew
