#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace crew {

/// Heartbeat gradient (inventory §6.3): healthy, warn, stale, dead.
enum class heartbeat_level : uint8_t { healthy = 0, warn, stale, dead };

const char* to_string(heartbeat_level x) noexcept;

/// Thresholds of the gradient in ms (reliability.heartbeat.*); ages are
/// compared strictly (`>`), as pi-crew does.
struct heartbeat_thresholds {
  uint64_t warn_ms = 30000;
  uint64_t stale_ms = 60000;
  uint64_t dead_ms = 300000;
};

/// Classifies a heartbeat of age `age_ms`.
heartbeat_level classify(const heartbeat_thresholds& t, uint64_t age_ms) noexcept;

/// CPU time (user + system, clock ticks) consumed so far by process `pid`,
/// from /proc; 0 if unknown. A worker whose CPU time grows is working even
/// when it prints nothing.
uint64_t process_cpu_ticks(int pid) noexcept;

} // namespace crew
