#include "runtime/supervision/heartbeat.hpp"

#include <cstdio>
#include <cstring>

namespace crew {

const char* to_string(heartbeat_level x) noexcept {
  switch (x) {
    case heartbeat_level::healthy:
      return "healthy";
    case heartbeat_level::warn:
      return "warn";
    case heartbeat_level::stale:
      return "stale";
    case heartbeat_level::dead:
      return "dead";
  }
  return "dead";
}

heartbeat_level classify(const heartbeat_thresholds& t, uint64_t age) noexcept {
  if (age > t.dead_ms)
    return heartbeat_level::dead;
  if (age > t.stale_ms)
    return heartbeat_level::stale;
  if (age > t.warn_ms)
    return heartbeat_level::warn;
  return heartbeat_level::healthy;
}

uint64_t process_cpu_ticks(int pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  auto f = std::fopen(path, "r");
  if (f == nullptr)
    return 0;
  char buf[1024];
  auto n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // Fields after the command name (which may contain spaces): state is 3,
  // utime 14, stime 15.
  auto p = std::strrchr(buf, ')');
  if (p == nullptr)
    return 0;
  unsigned long long utime = 0, stime = 0;
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                  &utime, &stime)
      != 2)
    return 0;
  return utime + stime;
}

} // namespace crew
