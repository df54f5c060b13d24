#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "messages/notification.hpp"
#include "observability/retention.hpp"

namespace crew {

/// `info`, `warning`, `error`, `critical`.
const char* to_string(severity x) noexcept;

/// Parses a severity name; false for anything else.
bool from_string(std::string_view str, severity& out) noexcept;

/// The dedup key of `n`: its id, else `<source>:<runId|global>:<title>`.
std::string dedup_key(const notification& n);

/// What the rules decided for one notification.
enum class delivery : uint8_t {
  deliver_now = 1,
  batched,           ///< held until `flush_batch`
  dropped_filtered,  ///< severity not in `severityFilter`
  dropped_quiet,     ///< within quiet hours
  dropped_duplicate, ///< same dedup key accepted within `dedupWindowMs`
};

const char* to_string(delivery x) noexcept;

/// The notification router's rules (inventory §8.5), with explicit clocks:
/// the wall clock only for quiet hours (in local time), the steady clock for
/// the dedup and batch windows. In order: severity filter, quiet hours,
/// dedup, then deliver now (`batchWindowMs` 0) or batch. A key counts as
/// delivered when it is accepted (delivered now or batched), so a duplicate
/// within a batch window is dropped too. Unlike pi-crew, keys older than the
/// dedup window are pruned, so memory stays bounded by the keys of one
/// window. Not synchronized: the owning actor serializes access.
class notification_rules {
public:
  using steady_time = std::chrono::steady_clock::time_point;
  using wall_time = std::chrono::system_clock::time_point;

  /// Unknown names in `severity_filter` are ignored; a `quiet_hours` that
  /// does not parse as `HH:MM-HH:MM` disables quiet hours.
  explicit notification_rules(const notifications_config& config);

  /// Decides the delivery of `n` at `wall` / `now`. `batched` keeps a copy.
  delivery decide(const notification& n, wall_time wall, steady_time now);

  /// When the pending batch is due (`nullopt`: nothing batched).
  std::optional<steady_time> batch_due() const;

  /// Hands out the pending batch when it is due at `now` (or always with
  /// `force`): nothing, the single notification unchanged, or several
  /// folded into one (`batch:<key,…>`, the highest severity, source `batch`,
  /// title `N crew notifications`, body one `• <title>` line each).
  std::vector<notification> flush_batch(steady_time now, bool force = false);

  /// Whether `minute_of_day` (0..1439, local) is within the quiet hours:
  /// start inclusive, end exclusive, across midnight when start > end,
  /// never when start == end or none are configured.
  bool in_quiet_hours(int minute_of_day) const;

  /// `in_quiet_hours` of the local time of `wall`.
  bool in_quiet_hours(wall_time wall) const;

  /// Number of dedup keys remembered (for tests of the pruning).
  size_t remembered_keys() const noexcept { return last_.size(); }

  /// Minute of the day of `wall` in the local time zone.
  static int local_minute_of_day(wall_time wall);

  /// Parses `HH:MM-HH:MM` into minutes of the day; false if malformed.
  static bool parse_quiet_hours(std::string_view text, int& start, int& end);

private:
  void prune(steady_time now);

  uint8_t filter_ = 0; ///< bit (1 << severity) per accepted severity
  int quiet_start_ = -1;
  int quiet_end_ = -1;
  std::chrono::milliseconds dedup_window_;
  std::chrono::milliseconds batch_window_;
  std::unordered_map<std::string, steady_time> last_; ///< key -> accepted at
  std::deque<std::pair<steady_time, std::string>> order_; ///< oldest first
  std::vector<notification> batch_;
  std::vector<std::string> batch_keys_;
  steady_time batch_started_{};
};

/// The deadletter-rate alert that pi-crew designed but never wired
/// (inventory §6.2 c): counts deadletters over a sliding hour.
class deadletter_alert {
public:
  using steady_time = std::chrono::steady_clock::time_point;

  explicit deadletter_alert(uint32_t per_hour);

  /// Records one deadletter at `now`. Returns true when the count within
  /// the last hour exceeds `per_hour` and no alert was raised within the
  /// last hour: one alert per hour of excess, not one per deadletter.
  bool record(steady_time now);

  /// Deadletters counted within the hour ending at `now`.
  uint64_t count(steady_time now) const;

  uint32_t per_hour() const noexcept { return per_hour_; }

private:
  uint32_t per_hour_;
  time_windowed_counter counter_;
  std::optional<steady_time> last_alert_;
};

/// The title of the deadletter-rate alert.
std::string deadletter_alert_title(uint32_t per_hour);

/// The JSONL record of `n` (redacted): `{id, severity, source, runId?,
/// title, body?, timestamp}`; runId and body only when non-empty, as
/// pi-crew's JSON.stringify drops undefined fields.
std::string notification_json_line(const notification& n);

/// Appends the record of `n` to `<dir>/<UTC date of n.timestamp>.jsonl`
/// (creating `dir`; not fsync'd: notifications are advisory) and deletes the
/// `YYYY-MM-DD.jsonl` files in `dir` dated more than `retention_days` before
/// that date. Pruning runs on every write (one directory listing; cheap at
/// notification rates), which covers pi-crew's "on date change" and also a
/// process that starts after the date changed. Other files are left alone.
/// Throws `io_error` if the line cannot be written.
void write_notification_jsonl(const std::filesystem::path& dir,
                              uint32_t retention_days, const notification& n);

} // namespace crew
