#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace crew {

/// Formats `t` as ISO-8601 UTC with milliseconds, the way JavaScript's
/// `Date.prototype.toISOString` does: `2026-11-26T01:15:45.123Z`.
std::string iso_time(std::chrono::system_clock::time_point t);

/// Appends the `iso_time` text of `t` to `out` (24 bytes). Hot path: the
/// formatted `YYYY-MM-DDTHH:MM:SS.` prefix of the last second seen is cached
/// per thread, so consecutive calls within one second only format the
/// milliseconds.
void append_iso_time(std::string& out, std::chrono::system_clock::time_point t);

/// Parses the `iso_time` format back (`YYYY-MM-DDTHH:MM:SS[.mmm]Z`);
/// returns false on any other text.
bool parse_iso_time(std::string_view str,
                    std::chrono::system_clock::time_point& out) noexcept;

/// The time point `unix_ms` milliseconds after the epoch, clamped to what
/// `system_clock` can hold (about the years 1678 to 2262 with nanosecond
/// ticks): a plain conversion of a larger value overflows (undefined).
std::chrono::system_clock::time_point
time_of_unix_ms(int64_t unix_ms) noexcept;

/// Returns `iso_time(std::chrono::system_clock::now())`.
std::string iso_now();

} // namespace crew
