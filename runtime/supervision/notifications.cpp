#include "runtime/supervision/notifications.hpp"

#include <algorithm>
#include <ctime>
#include <system_error>

#include <nlohmann/json.hpp>

#include "observability/redact.hpp"
#include "store/atomic_file.hpp"
#include "store/clock.hpp"

namespace fs = std::filesystem;

namespace crew {

namespace {

constexpr const char* severity_names[] = {"info", "warning", "error",
                                          "critical"};

uint8_t bit(severity x) noexcept {
  return static_cast<uint8_t>(1u << static_cast<uint8_t>(x));
}

/// Parses `HH:MM` at `text[0..5)` into minutes; -1 if malformed.
int parse_hhmm(std::string_view text) {
  if (text.size() != 5 || text[2] != ':')
    return -1;
  for (size_t i : {0, 1, 3, 4})
    if (text[i] < '0' || text[i] > '9')
      return -1;
  int h = (text[0] - '0') * 10 + (text[1] - '0');
  int m = (text[3] - '0') * 10 + (text[4] - '0');
  if (h > 23 || m > 59)
    return -1;
  return h * 60 + m;
}

/// Whether `name` looks like `YYYY-MM-DD`.
bool is_date(std::string_view name) {
  if (name.size() != 10 || name[4] != '-' || name[7] != '-')
    return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (i != 4 && i != 7 && (name[i] < '0' || name[i] > '9'))
      return false;
  return true;
}

} // namespace

const char* to_string(severity x) noexcept {
  auto i = static_cast<uint8_t>(x);
  return i >= 1 && i <= 4 ? severity_names[i - 1] : "info";
}

bool from_string(std::string_view str, severity& out) noexcept {
  for (uint8_t i = 0; i < 4; ++i)
    if (str == severity_names[i]) {
      out = static_cast<severity>(i + 1);
      return true;
    }
  return false;
}

const char* to_string(delivery x) noexcept {
  switch (x) {
    case delivery::deliver_now:
      return "deliver_now";
    case delivery::batched:
      return "batched";
    case delivery::dropped_filtered:
      return "dropped_filtered";
    case delivery::dropped_quiet:
      return "dropped_quiet";
    case delivery::dropped_duplicate:
      return "dropped_duplicate";
  }
  return "?";
}

std::string dedup_key(const notification& n) {
  if (!n.id.empty())
    return n.id;
  std::string key;
  key.reserve(n.source.size() + n.run_id.size() + n.title.size() + 8);
  key += n.source;
  key += ':';
  key += n.run_id.empty() ? std::string_view{"global"} : n.run_id;
  key += ':';
  key += n.title;
  return key;
}

// -- notification_rules ------------------------------------------------------

notification_rules::notification_rules(const notifications_config& config)
    : dedup_window_(config.dedup_window_ms),
      batch_window_(config.batch_window_ms) {
  for (auto& name : config.severity_filter) {
    severity x;
    if (from_string(name, x))
      filter_ |= bit(x);
  }
  if (config.quiet_hours
      && !parse_quiet_hours(*config.quiet_hours, quiet_start_, quiet_end_))
    quiet_start_ = quiet_end_ = -1;
}

bool notification_rules::parse_quiet_hours(std::string_view text, int& start,
                                           int& end) {
  if (text.size() != 11 || text[5] != '-')
    return false;
  auto s = parse_hhmm(text.substr(0, 5));
  auto e = parse_hhmm(text.substr(6, 5));
  if (s < 0 || e < 0)
    return false;
  start = s;
  end = e;
  return true;
}

int notification_rules::local_minute_of_day(wall_time wall) {
  auto t = std::chrono::system_clock::to_time_t(wall);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  return tm.tm_hour * 60 + tm.tm_min;
}

bool notification_rules::in_quiet_hours(int minute) const {
  if (quiet_start_ < 0 || quiet_start_ == quiet_end_)
    return false;
  if (quiet_start_ < quiet_end_)
    return minute >= quiet_start_ && minute < quiet_end_;
  return minute >= quiet_start_ || minute < quiet_end_; // across midnight
}

bool notification_rules::in_quiet_hours(wall_time wall) const {
  return quiet_start_ >= 0 && in_quiet_hours(local_minute_of_day(wall));
}

void notification_rules::prune(steady_time now) {
  while (!order_.empty() && now - order_.front().first >= dedup_window_) {
    auto i = last_.find(order_.front().second);
    // A key accepted again later has a newer entry further back.
    if (i != last_.end() && i->second == order_.front().first)
      last_.erase(i);
    order_.pop_front();
  }
}

delivery notification_rules::decide(const notification& n, wall_time wall,
                                    steady_time now) {
  prune(now);
  if ((filter_ & bit(n.sev)) == 0)
    return delivery::dropped_filtered;
  if (in_quiet_hours(wall))
    return delivery::dropped_quiet;
  auto key = dedup_key(n);
  if (auto i = last_.find(key);
      i != last_.end() && now - i->second < dedup_window_)
    return delivery::dropped_duplicate;
  last_[key] = now;
  order_.emplace_back(now, key);
  if (batch_window_.count() == 0)
    return delivery::deliver_now;
  if (batch_.empty())
    batch_started_ = now;
  batch_.push_back(n);
  batch_keys_.push_back(std::move(key));
  return delivery::batched;
}

std::optional<notification_rules::steady_time>
notification_rules::batch_due() const {
  if (batch_.empty())
    return std::nullopt;
  return batch_started_ + batch_window_;
}

std::vector<notification> notification_rules::flush_batch(steady_time now,
                                                          bool force) {
  std::vector<notification> out;
  if (batch_.empty() || (!force && now < batch_started_ + batch_window_))
    return out;
  if (batch_.size() == 1) {
    out.push_back(std::move(batch_.front()));
  } else {
    notification folded;
    folded.id = "batch:";
    for (size_t i = 0; i < batch_keys_.size(); ++i) {
      if (i > 0)
        folded.id += ',';
      folded.id += batch_keys_[i];
    }
    folded.source = "batch";
    folded.title = std::to_string(batch_.size()) + " crew notifications";
    folded.sev = severity::info;
    for (auto& n : batch_) {
      folded.sev = std::max(folded.sev, n.sev);
      folded.timestamp = std::max(folded.timestamp, n.timestamp);
      if (!folded.body.empty())
        folded.body += '\n';
      folded.body += "\xE2\x80\xA2 "; // "• "
      folded.body += n.title;
    }
    out.push_back(std::move(folded));
  }
  batch_.clear();
  batch_keys_.clear();
  return out;
}

// -- deadletter_alert --------------------------------------------------------

deadletter_alert::deadletter_alert(uint32_t per_hour)
    : per_hour_(per_hour), counter_(std::chrono::hours{1}, 60) {
}

bool deadletter_alert::record(steady_time now) {
  counter_.add(1, now);
  if (count(now) <= per_hour_)
    return false;
  if (last_alert_ && now - *last_alert_ < std::chrono::hours{1})
    return false;
  last_alert_ = now;
  return true;
}

uint64_t deadletter_alert::count(steady_time now) const {
  return static_cast<uint64_t>(counter_.sum(now));
}

std::string deadletter_alert_title(uint32_t per_hour) {
  return "More than " + std::to_string(per_hour)
         + " deadletters within an hour";
}

// -- the JSONL sink ----------------------------------------------------------

std::string notification_json_line(const notification& n) {
  nlohmann::json rec = nlohmann::json::object();
  rec["id"] = n.id.empty() ? dedup_key(n) : n.id;
  rec["severity"] = to_string(n.sev);
  rec["source"] = n.source;
  if (!n.run_id.empty())
    rec["runId"] = n.run_id;
  rec["title"] = n.title;
  if (!n.body.empty())
    rec["body"] = n.body;
  rec["timestamp"] = iso_time(n.timestamp);
  auto line = redact(rec).dump(-1, ' ', false,
                               nlohmann::json::error_handler_t::replace);
  line += '\n';
  return line;
}

void write_notification_jsonl(const fs::path& dir, uint32_t retention_days,
                              const notification& n) {
  auto date = iso_time(n.timestamp).substr(0, 10);
  append_file(dir / (date + ".jsonl"), notification_json_line(n), false);
  auto cutoff = iso_time(n.timestamp - std::chrono::hours{24} * retention_days)
                  .substr(0, 10);
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    auto& p = it->path();
    if (p.extension() != ".jsonl")
      continue;
    auto stem = p.stem().string();
    if (is_date(stem) && stem < cutoff) {
      std::error_code rm;
      fs::remove(p, rm);
    }
  }
}

} // namespace crew
