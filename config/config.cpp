#include "config/config.hpp"

#include "messages/errors.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <sstream>

namespace crew {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* to_string(runtime_mode x) noexcept {
  switch (x) {
    case runtime_mode::automatic:
      return "auto";
    case runtime_mode::scaffold:
      return "scaffold";
    case runtime_mode::child_process:
      return "child-process";
    case runtime_mode::live_session:
      return "live-session";
    case runtime_mode::sim:
      return "sim";
  }
  return "???";
}

const char* to_string(group_join_mode x) noexcept {
  switch (x) {
    case group_join_mode::off:
      return "off";
    case group_join_mode::group:
      return "group";
    case group_join_mode::smart:
      return "smart";
  }
  return "???";
}

const char* to_string(pi_mode x) noexcept {
  return x == pi_mode::rpc ? "rpc" : "spawn";
}

const char* to_string(fsync_mode x) noexcept {
  switch (x) {
    case fsync_mode::none:
      return "none";
    case fsync_mode::batch:
      return "batch";
    case fsync_mode::always:
      return "always";
  }
  return "???";
}

const char* to_string(workspace_mode x) noexcept {
  return x == workspace_mode::worktree ? "worktree" : "single";
}

namespace {

// -- schema -------------------------------------------------------------------

enum class kind {
  boolean,
  integer,
  number,
  string,
  enumeration,
  string_list,
  enum_list,
  string_map,      ///< record<string, string>
  string_list_map, ///< record<string, string[]>
  hhmm_range,      ///< "HH:MM-HH:MM"
  string_or_false,
  string_list_or_false,
  string_list_or_false_or_csv,
  http_url,     ///< "http(s)://host[:port][/path]"
  http_headers, ///< record<token, string without CR/LF>
};

constexpr int64_t unbounded = 9007199254740991; // 2^53 - 1

struct key_spec {
  const char* path; ///< normalized path; `*` stands for a map entry
  kind type;
  double min = 0;
  double max = 0;
  std::vector<const char*> choices = {};
};

const std::vector<key_spec>& schema() {
  using k = kind;
  static const std::vector<key_spec> result{
    {"$schema", k::string},
    {"asyncByDefault", k::boolean},
    {"executeWorkers", k::boolean},
    {"notifierIntervalMs", k::integer, 1000, unbounded},
    {"requireCleanWorktreeLeader", k::boolean},
    {"workspaceMode", k::enumeration, 0, 0, {"single", "worktree"}},
    {"autonomous.profile", k::enumeration, 0, 0,
     {"manual", "suggested", "assisted", "aggressive"}},
    {"autonomous.enabled", k::boolean},
    {"autonomous.injectPolicy", k::boolean},
    {"autonomous.preferAsyncForLongTasks", k::boolean},
    {"autonomous.allowWorktreeSuggestion", k::boolean},
    {"autonomous.magicKeywords", k::string_list_map},
    {"limits.maxConcurrentWorkers", k::integer, 1, 1024},
    {"limits.allowUnboundedConcurrency", k::boolean},
    {"limits.maxTaskDepth", k::integer, 1, 100},
    {"limits.maxChildrenPerTask", k::integer, 1, 1000},
    {"limits.maxRunMinutes", k::integer, 1, 1440},
    {"limits.maxRetriesPerTask", k::integer, 1, 100},
    {"limits.maxTasksPerRun", k::integer, 1, 10000},
    {"limits.heartbeatStaleMs", k::integer, 1, 86400000},
    {"runtime.mode", k::enumeration, 0, 0,
     {"auto", "scaffold", "child-process", "live-session", "sim"}},
    {"runtime.preferLiveSession", k::boolean},
    {"runtime.allowChildProcessFallback", k::boolean},
    {"runtime.maxTurns", k::integer, 1, 10000},
    {"runtime.graceTurns", k::integer, 1, 1000},
    {"runtime.inheritContext", k::boolean},
    {"runtime.promptMode", k::enumeration, 0, 0, {"replace", "append"}},
    {"runtime.groupJoin", k::enumeration, 0, 0, {"off", "group", "smart"}},
    {"runtime.piMode", k::enumeration, 0, 0, {"spawn", "rpc"}},
    {"control.enabled", k::boolean},
    {"control.needsAttentionAfterMs", k::integer, 1, unbounded},
    {"worktree.setupHook", k::string},
    {"worktree.setupHookTimeoutMs", k::integer, 1, 300000},
    {"worktree.linkNodeModules", k::boolean},
    {"agents.disableBuiltins", k::boolean},
    {"agents.overrides.*.disabled", k::boolean},
    {"agents.overrides.*.model", k::string_or_false},
    {"agents.overrides.*.fallbackModels", k::string_list_or_false_or_csv},
    {"agents.overrides.*.thinking", k::string_or_false},
    {"agents.overrides.*.tools", k::string_list_or_false},
    {"ui.widgetPlacement", k::enumeration, 0, 0, {"aboveEditor", "belowEditor"}},
    {"ui.widgetMaxLines", k::integer, 1, 50},
    {"ui.powerbar", k::boolean},
    {"ui.dashboardPlacement", k::enumeration, 0, 0, {"center", "right"}},
    {"ui.dashboardWidth", k::integer, 32, 120},
    {"ui.dashboardLiveRefreshMs", k::integer, 250, 60000},
    {"ui.autoOpenDashboard", k::boolean},
    {"ui.autoOpenDashboardForForegroundRuns", k::boolean},
    {"ui.showModel", k::boolean},
    {"ui.showTokens", k::boolean},
    {"ui.showTools", k::boolean},
    {"ui.transcriptTailBytes", k::integer, 1024, 52428800},
    {"ui.mascotStyle", k::enumeration, 0, 0, {"cat", "armin"}},
    {"ui.mascotEffect", k::enumeration, 0, 0,
     {"random", "none", "typewriter", "scanline", "rain", "fade", "crt",
      "glitch", "dissolve"}},
    {"tools.enableClaudeStyleAliases", k::boolean},
    {"tools.enableSteer", k::boolean},
    {"tools.terminateOnForeground", k::boolean},
    {"telemetry.enabled", k::boolean},
    {"notifications.enabled", k::boolean},
    {"notifications.severityFilter", k::enum_list, 0, 0,
     {"info", "warning", "error", "critical"}},
    {"notifications.dedupWindowMs", k::integer, 1000, 86400000},
    {"notifications.batchWindowMs", k::integer, 0, 60000},
    {"notifications.quietHours", k::hhmm_range},
    {"notifications.sinkRetentionDays", k::integer, 1, 90},
    {"notifications.deadletterAlertPerHour", k::integer, 1, 1000000},
    {"observability.enabled", k::boolean},
    {"observability.pollIntervalMs", k::integer, 1000, 60000},
    {"observability.metricRetentionDays", k::integer, 1, 365},
    {"reliability.autoRetry", k::boolean},
    {"reliability.autoRecover", k::boolean},
    {"reliability.deadletterThreshold", k::integer, 1, 1000000},
    {"reliability.retryPolicy.maxAttempts", k::integer, 1, 10},
    {"reliability.retryPolicy.backoffMs", k::integer, 100, 60000},
    {"reliability.retryPolicy.jitterRatio", k::number, 0, 1},
    {"reliability.retryPolicy.exponentialFactor", k::number, 1, 5},
    {"reliability.retryPolicy.retryableErrors", k::string_list},
    {"reliability.retryPolicy.maxBackoffMs", k::integer, 100, 3600000},
    {"reliability.heartbeat.warnMs", k::integer, 1, 86400000},
    {"reliability.heartbeat.staleMs", k::integer, 1, 86400000},
    {"reliability.heartbeat.deadMs", k::integer, 1, 86400000},
    {"otlp.enabled", k::boolean},
    {"otlp.endpoint", k::http_url},
    {"otlp.headers", k::http_headers},
    {"otlp.intervalMs", k::integer, 5000, unbounded},
    {"store.fsync", k::enumeration, 0, 0, {"none", "batch", "always"}},
    {"store.snapshotIntervalMs", k::integer, 0, 3600000},
    {"serve.host", k::string},
    {"serve.port", k::integer, 0, 65535},
    {"serve.token", k::string},
  };
  return result;
}

/// Object-valued paths; `*` marks a map whose keys are free names.
const std::vector<std::string>& sections() {
  static const std::vector<std::string> result{
    "autonomous", "limits",        "runtime",
    "control",    "worktree",      "agents",
    "agents.overrides", "agents.overrides.*", "ui",
    "tools",      "telemetry",     "notifications",
    "observability", "reliability", "reliability.retryPolicy",
    "reliability.heartbeat", "otlp", "store",
    "serve",
  };
  return result;
}

bool is_map_section(std::string_view norm) {
  return norm == "agents.overrides";
}

bool is_section(std::string_view norm) {
  auto& xs = sections();
  return std::find(xs.begin(), xs.end(), norm) != xs.end();
}

const key_spec* find_spec(std::string_view norm) {
  for (auto& spec : schema())
    if (norm == spec.path)
      return &spec;
  return nullptr;
}

std::string join_path(std::string_view prefix, std::string_view key) {
  if (prefix.empty())
    return std::string{key};
  return fmt::format("{}.{}", prefix, key);
}

/// Maps a concrete dotted path to its schema path (`agents.overrides.x.model`
/// -> `agents.overrides.*.model`).
std::string normalize(std::string_view path) {
  constexpr std::string_view prefix = "agents.overrides.";
  if (path.substr(0, prefix.size()) != prefix)
    return std::string{path};
  auto rest = path.substr(prefix.size());
  auto dot = rest.find('.');
  if (dot == std::string_view::npos)
    return std::string{prefix} + "*";
  return std::string{prefix} + "*" + std::string{rest.substr(dot)};
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1);
  std::vector<size_t> cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      auto cost = std::tolower(static_cast<unsigned char>(a[i - 1]))
                      == std::tolower(static_cast<unsigned char>(b[j - 1]))
                    ? 0
                    : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

/// Returns the closest known sibling of `key` under `parent_norm`, if close.
std::string suggest(std::string_view parent_norm, std::string_view key) {
  std::string best;
  size_t best_dist = 3;
  auto consider = [&](std::string_view path) {
    auto dot = path.rfind('.');
    auto parent = dot == std::string_view::npos ? std::string_view{}
                                                : path.substr(0, dot);
    auto name = dot == std::string_view::npos ? path : path.substr(dot + 1);
    if (parent != parent_norm)
      return;
    if (auto d = edit_distance(key, name); d < best_dist) {
      best_dist = d;
      best = std::string{name};
    }
  };
  for (auto& spec : schema())
    consider(spec.path);
  for (auto& sec : sections())
    consider(sec);
  return best;
}

// -- validation ---------------------------------------------------------------

[[noreturn]] void fail(std::string_view origin, std::string_view path,
                       const std::string& msg) {
  if (origin == "--set")
    throw input_error(fmt::format("--set {}: {}", path, msg));
  if (path.empty())
    throw input_error(fmt::format("{}: {}", origin, msg));
  throw input_error(fmt::format("{}: {}: {}", origin, path, msg));
}

std::string got(const json& v) {
  // replace: a value from --set may hold bytes that are not UTF-8, and the
  // default handler would throw type_error.316 instead of this message
  auto str = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (str.size() > 60)
    str = str.substr(0, 57) + "...";
  return fmt::format("(got {})", str);
}

std::string choices_text(const key_spec& spec) {
  std::string out;
  for (auto c : spec.choices) {
    if (!out.empty())
      out += ", ";
    out += c;
  }
  return out;
}

bool is_string_list(const json& v) {
  return v.is_array()
         && std::all_of(v.begin(), v.end(),
                        [](const json& x) { return x.is_string(); });
}

bool is_integral(const json& v) {
  if (v.is_number_integer())
    return true;
  if (v.is_number_float()) {
    auto d = v.get<double>();
    return std::isfinite(d) && std::floor(d) == d;
  }
  return false;
}

bool is_hhmm_range(const std::string& s) {
  auto digit = [&](size_t i) { return s[i] >= '0' && s[i] <= '9'; };
  return s.size() == 11 && digit(0) && digit(1) && s[2] == ':' && digit(3)
         && digit(4) && s[5] == '-' && digit(6) && digit(7) && s[8] == ':'
         && digit(9) && digit(10);
}

bool is_http_url(std::string_view url) {
  std::string_view rest;
  if (url.starts_with("http://"))
    rest = url.substr(7);
  else if (url.starts_with("https://"))
    rest = url.substr(8);
  else
    return false;
  auto host = rest.substr(0, rest.find('/'));
  if (host.empty() || host.find_first_of(" \t\r\n@") != std::string_view::npos)
    return false;
  if (auto colon = host.rfind(':'); colon != std::string_view::npos
                                    && host.find(']') == std::string_view::npos) {
    auto port = host.substr(colon + 1);
    if (port.empty() || port.size() > 5
        || port.find_first_not_of("0123456789") != std::string_view::npos
        || std::stoi(std::string{port}) > 65535 || colon == 0)
      return false;
  }
  return true;
}

bool is_header_name(std::string_view name) {
  return !name.empty()
         && std::all_of(name.begin(), name.end(), [](char c) {
              return std::isalnum(static_cast<unsigned char>(c)) || c == '-'
                     || c == '_';
            });
}

void check_leaf(const key_spec& spec, const json& v, std::string_view origin,
                const std::string& path) {
  switch (spec.type) {
    case kind::boolean:
      if (!v.is_boolean())
        fail(origin, path, "must be true or false " + got(v));
      return;
    case kind::integer: {
      auto ok = is_integral(v) && v.get<double>() >= spec.min
                && v.get<double>() <= spec.max;
      if (!ok) {
        if (spec.max >= static_cast<double>(unbounded))
          fail(origin, path,
               fmt::format("must be an integer >= {} {}",
                           static_cast<int64_t>(spec.min), got(v)));
        fail(origin, path,
             fmt::format("must be an integer between {} and {} {}",
                         static_cast<int64_t>(spec.min),
                         static_cast<int64_t>(spec.max), got(v)));
      }
      return;
    }
    case kind::number: {
      auto ok = v.is_number() && v.get<double>() >= spec.min
                && v.get<double>() <= spec.max;
      if (!ok)
        fail(origin, path,
             fmt::format("must be a number between {} and {} {}", spec.min,
                         spec.max, got(v)));
      return;
    }
    case kind::string:
      if (!v.is_string())
        fail(origin, path, "must be a string " + got(v));
      return;
    case kind::enumeration: {
      auto ok = v.is_string()
                && std::any_of(spec.choices.begin(), spec.choices.end(),
                               [&](const char* c) {
                                 return v.get<std::string>() == c;
                               });
      if (!ok)
        fail(origin, path,
             fmt::format("must be one of {} {}", choices_text(spec), got(v)));
      return;
    }
    case kind::string_list:
      if (!is_string_list(v))
        fail(origin, path, "must be an array of strings " + got(v));
      return;
    case kind::enum_list: {
      auto ok = is_string_list(v)
                && std::all_of(v.begin(), v.end(), [&](const json& x) {
                     return std::any_of(spec.choices.begin(),
                                        spec.choices.end(), [&](const char* c) {
                                          return x.get<std::string>() == c;
                                        });
                   });
      if (!ok)
        fail(origin, path,
             fmt::format("must be an array of: {} {}", choices_text(spec),
                         got(v)));
      return;
    }
    case kind::string_map: {
      auto ok = v.is_object()
                && std::all_of(v.begin(), v.end(),
                               [](const json& x) { return x.is_string(); });
      if (!ok)
        fail(origin, path,
             "must be an object with string values " + got(v));
      return;
    }
    case kind::string_list_map: {
      auto ok = v.is_object() && std::all_of(v.begin(), v.end(), is_string_list);
      if (!ok)
        fail(origin, path,
             "must be an object whose values are arrays of strings " + got(v));
      return;
    }
    case kind::http_url:
      if (!v.is_string() || !is_http_url(v.get<std::string>()))
        fail(origin, path,
             "must be an http:// or https:// URL with a host, e.g. "
             "\"http://127.0.0.1:4318/v1/metrics\" "
               + got(v));
      return;
    case kind::http_headers: {
      auto ok = v.is_object()
                && std::all_of(v.items().begin(), v.items().end(),
                               [](const auto& kv) {
                                 return is_header_name(kv.key())
                                        && kv.value().is_string()
                                        && kv.value().template get<std::string>()
                                               .find_first_of("\r\n")
                                             == std::string::npos;
                               });
      if (!ok)
        fail(origin, path,
             "must map header names (letters, digits, -) to single-line "
             "strings "
               + got(v));
      return;
    }
    case kind::hhmm_range:
      if (!v.is_string() || !is_hhmm_range(v.get<std::string>()))
        fail(origin, path, "must be a string \"HH:MM-HH:MM\" " + got(v));
      return;
    case kind::string_or_false:
      if (!v.is_string() && v != json(false))
        fail(origin, path, "must be a string or false " + got(v));
      return;
    case kind::string_list_or_false:
      if (!is_string_list(v) && v != json(false))
        fail(origin, path, "must be an array of strings or false " + got(v));
      return;
    case kind::string_list_or_false_or_csv:
      if (!is_string_list(v) && !v.is_string() && v != json(false))
        fail(origin, path,
             "must be an array of strings, a comma-separated string or false "
               + got(v));
      return;
  }
}

void check_value(const json& v, std::string_view origin,
                 const std::string& path) {
  auto norm = normalize(path);
  if (auto spec = find_spec(norm)) {
    check_leaf(*spec, v, origin, path);
    return;
  }
  if (path.empty() || is_section(norm)) {
    if (!v.is_object())
      fail(origin, path,
           (path.empty() ? "the configuration must be a JSON object "
                         : "must be an object ")
             + got(v));
    for (auto& [key, child] : v.items()) {
      auto child_path = join_path(path, key);
      auto child_norm = is_map_section(norm) ? join_path(norm, "*")
                                             : join_path(norm, key);
      if (find_spec(child_norm) == nullptr && !is_section(child_norm)) {
        auto hint = suggest(norm, key);
        fail(origin, child_path,
             hint.empty() ? std::string{"unknown key"}
                          : fmt::format("unknown key (did you mean '{}'?)",
                                        hint));
      }
      check_value(child, origin, child_path);
    }
    return;
  }
  fail(origin, path, "unknown key");
}

// -- merge --------------------------------------------------------------------

void merge_into(json& dst, const json& src, const std::string& norm) {
  for (auto& [key, value] : src.items()) {
    auto child_norm = is_map_section(norm) ? join_path(norm, "*")
                                           : join_path(norm, key);
    bool replace = !value.is_object() || child_norm == "agents.overrides.*"
                   || child_norm == "autonomous.magicKeywords"
                   || !dst.contains(key) || !dst[key].is_object();
    if (replace)
      dst[key] = value;
    else
      merge_into(dst[key], value, child_norm);
  }
}

// -- typed extraction ---------------------------------------------------------

const json* lookup(const json& root, std::string_view dotted) {
  const json* cur = &root;
  while (true) {
    auto dot = dotted.find('.');
    auto key = std::string{dotted.substr(0, dot)};
    if (!cur->is_object())
      return nullptr;
    auto i = cur->find(key);
    if (i == cur->end())
      return nullptr;
    cur = &*i;
    if (dot == std::string_view::npos)
      return cur;
    dotted.remove_prefix(dot + 1);
  }
}

template <class T>
void read(const json& root, std::string_view key, T& out) {
  if (auto v = lookup(root, key)) {
    if constexpr (std::is_same_v<T, bool>) {
      out = v->get<bool>();
    } else if constexpr (std::is_same_v<T, double>) {
      out = v->get<double>();
    } else if constexpr (std::is_integral_v<T>) {
      out = static_cast<T>(v->get<double>());
    } else {
      out = v->get<T>();
    }
  }
}

template <class T>
void read(const json& root, std::string_view key, std::optional<T>& out) {
  if (lookup(root, key) != nullptr) {
    T tmp{};
    read(root, key, tmp);
    out = std::move(tmp);
  }
}

template <class Enum>
void read_enum(const json& root, std::string_view key, Enum& out,
               std::initializer_list<Enum> values) {
  if (auto v = lookup(root, key))
    for (auto x : values)
      if (v->get<std::string>() == to_string(x))
        out = x;
}

void extract(crew_config& cfg) {
  auto& j = cfg.values;
  read(j, "asyncByDefault", cfg.async_by_default);
  read(j, "executeWorkers", cfg.execute_workers);
  read(j, "notifierIntervalMs", cfg.notifier_interval_ms);
  read(j, "requireCleanWorktreeLeader", cfg.require_clean_worktree_leader);
  if (lookup(j, "workspaceMode") != nullptr) {
    auto mode = workspace_mode::single;
    read_enum(j, "workspaceMode", mode,
              {workspace_mode::single, workspace_mode::worktree});
    cfg.workspace = mode;
  }
  read(j, "telemetry.enabled", cfg.telemetry_enabled);
  auto& l = cfg.limits;
  read(j, "limits.maxConcurrentWorkers", l.max_concurrent_workers);
  read(j, "limits.allowUnboundedConcurrency", l.allow_unbounded_concurrency);
  read(j, "limits.maxTaskDepth", l.max_task_depth);
  read(j, "limits.maxChildrenPerTask", l.max_children_per_task);
  read(j, "limits.maxRunMinutes", l.max_run_minutes);
  read(j, "limits.maxRetriesPerTask", l.max_retries_per_task);
  read(j, "limits.maxTasksPerRun", l.max_tasks_per_run);
  read(j, "limits.heartbeatStaleMs", l.heartbeat_stale_ms);
  auto& r = cfg.runtime;
  read_enum(j, "runtime.mode", r.mode,
            {runtime_mode::automatic, runtime_mode::scaffold,
             runtime_mode::child_process, runtime_mode::live_session,
             runtime_mode::sim});
  read(j, "runtime.preferLiveSession", r.prefer_live_session);
  read(j, "runtime.allowChildProcessFallback", r.allow_child_process_fallback);
  read_enum(j, "runtime.groupJoin", r.group_join,
            {group_join_mode::off, group_join_mode::group,
             group_join_mode::smart});
  read_enum(j, "runtime.piMode", r.pi_mode, {pi_mode::spawn, pi_mode::rpc});
  auto& rel = cfg.reliability;
  read(j, "reliability.autoRetry", rel.auto_retry);
  read(j, "reliability.autoRecover", rel.auto_recover);
  read(j, "reliability.deadletterThreshold", rel.deadletter_threshold);
  auto& rp = rel.retry_policy;
  read(j, "reliability.retryPolicy.maxAttempts", rp.max_attempts);
  read(j, "reliability.retryPolicy.backoffMs", rp.backoff_ms);
  read(j, "reliability.retryPolicy.jitterRatio", rp.jitter_ratio);
  read(j, "reliability.retryPolicy.exponentialFactor", rp.exponential_factor);
  read(j, "reliability.retryPolicy.retryableErrors", rp.retryable_errors);
  read(j, "reliability.retryPolicy.maxBackoffMs", rp.max_backoff_ms);
  read(j, "reliability.heartbeat.warnMs", rel.heartbeat.warn_ms);
  read(j, "reliability.heartbeat.staleMs", rel.heartbeat.stale_ms);
  read(j, "reliability.heartbeat.deadMs", rel.heartbeat.dead_ms);
  auto& n = cfg.notifications;
  read(j, "notifications.enabled", n.enabled);
  read(j, "notifications.severityFilter", n.severity_filter);
  read(j, "notifications.dedupWindowMs", n.dedup_window_ms);
  read(j, "notifications.batchWindowMs", n.batch_window_ms);
  read(j, "notifications.quietHours", n.quiet_hours);
  read(j, "notifications.sinkRetentionDays", n.sink_retention_days);
  read(j, "notifications.deadletterAlertPerHour", n.deadletter_alert_per_hour);
  auto& o = cfg.observability;
  read(j, "observability.enabled", o.enabled);
  read(j, "observability.pollIntervalMs", o.poll_interval_ms);
  read(j, "observability.metricRetentionDays", o.metric_retention_days);
  read(j, "otlp.enabled", cfg.otlp.enabled);
  read(j, "otlp.endpoint", cfg.otlp.endpoint);
  read(j, "otlp.headers", cfg.otlp.headers);
  read(j, "otlp.intervalMs", cfg.otlp.interval_ms);
  read_enum(j, "store.fsync", cfg.store.fsync,
            {fsync_mode::none, fsync_mode::batch, fsync_mode::always});
  read(j, "store.snapshotIntervalMs", cfg.store.snapshot_interval_ms);
  read(j, "serve.host", cfg.serve.host);
  read(j, "serve.port", cfg.serve.port);
  read(j, "serve.token", cfg.serve.token);
}

crew_config rebuild(json values, std::vector<fs::path> files) {
  crew_config cfg;
  cfg.values = std::move(values);
  cfg.files = std::move(files);
  extract(cfg);
  return cfg;
}

// -- files --------------------------------------------------------------------

std::optional<json> read_json_file(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec))
    return std::nullopt;
  std::ifstream in{file, std::ios::binary};
  if (!in)
    throw input_error(fmt::format("{}: cannot read file", file.string()));
  std::ostringstream buf;
  buf << in.rdbuf();
  auto text = std::move(buf).str();
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    size_t line = 1;
    size_t col = 1;
    auto end = std::min(text.size(), e.byte > 0 ? e.byte - 1 : 0);
    for (size_t i = 0; i < end; ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos)
      what.erase(0, pos + 2);
    throw input_error(fmt::format("{}:{}:{}: invalid JSON: {}", file.string(),
                                  line, col, what));
  } catch (const json::exception& e) {
    // out_of_range.406: a number too large for a double, such as 1e400
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos)
      what.erase(0, pos + 2);
    throw input_error(
      fmt::format("{}: invalid JSON: {}", file.string(), what));
  }
}

} // namespace

crew_config config_from_json(const json& values, std::string_view origin) {
  check_value(values, origin, "");
  return rebuild(values, {});
}

crew_config load_config(const fs::path& project_crew_root,
                        const fs::path& user_config_file) {
  json merged = json::object();
  std::vector<fs::path> files;
  auto load = [&](const fs::path& file) {
    if (file.empty())
      return;
    if (auto doc = read_json_file(file)) {
      check_value(*doc, file.string(), "");
      merge_into(merged, *doc, "");
      files.push_back(file);
    }
  };
  load(user_config_file);
  if (!project_crew_root.empty())
    load(project_crew_root / "config.json");
  return rebuild(std::move(merged), std::move(files));
}

void apply_override(crew_config& cfg, std::string_view key_eq_value) {
  auto eq = key_eq_value.find('=');
  std::string key{key_eq_value.substr(0, eq)};
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!key.empty() && is_space(key.back()))
    key.pop_back();
  while (!key.empty() && is_space(key.front()))
    key.erase(0, 1);
  if (eq == std::string_view::npos || key.empty())
    throw input_error(fmt::format("--set: expected key=value (got '{}')",
                                  key_eq_value));
  std::string text{key_eq_value.substr(eq + 1)};
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    auto dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (parts.back().empty())
      throw input_error(fmt::format("--set {}: empty key segment", key));
    if (dot == std::string::npos)
      break;
    start = dot + 1;
  }
  auto value = json::parse(text, nullptr, false);
  auto spec = find_spec(normalize(key));
  if (spec != nullptr) {
    switch (spec->type) {
      case kind::string:
      case kind::enumeration:
      case kind::hhmm_range:
      case kind::http_url:
        if (!value.is_string())
          value = text;
        break;
      case kind::string_or_false:
        if (!value.is_string() && value != json(false))
          value = text;
        break;
      case kind::string_list:
      case kind::enum_list:
      case kind::string_list_or_false:
      case kind::string_list_or_false_or_csv:
        if (value.is_discarded() || value.is_string()) {
          auto csv = value.is_string() ? value.get<std::string>() : text;
          value = json::array();
          size_t start = 0;
          while (true) {
            auto comma = csv.find(',', start);
            auto item = csv.substr(start, comma - start);
            item.erase(0, item.find_first_not_of(" \t"));
            item.erase(item.find_last_not_of(" \t") + 1);
            if (!item.empty())
              value.push_back(item);
            if (comma == std::string::npos)
              break;
            start = comma + 1;
          }
        }
        break;
      default:
        break;
    }
  }
  if (value.is_discarded())
    value = text;
  // Build {"a": {"b": value}} and validate it like a file.
  json patch = std::move(value);
  for (auto i = parts.rbegin(); i != parts.rend(); ++i) {
    json wrapper = json::object();
    wrapper[*i] = std::move(patch);
    patch = std::move(wrapper);
  }
  check_value(patch, "--set", "");
  auto values = cfg.values;
  merge_into(values, patch, "");
  cfg = rebuild(std::move(values), std::move(cfg.files));
}

json to_json(const crew_config& cfg) {
  json j = cfg.values;
  auto set = [&j](std::string_view dotted, json value) {
    json* cur = &j;
    while (true) {
      auto dot = dotted.find('.');
      auto key = std::string{dotted.substr(0, dot)};
      if (dot == std::string_view::npos) {
        (*cur)[key] = std::move(value);
        return;
      }
      if (!cur->contains(key) || !(*cur)[key].is_object())
        (*cur)[key] = json::object();
      cur = &(*cur)[key];
      dotted.remove_prefix(dot + 1);
    }
  };
  auto opt = [&set](std::string_view dotted, const auto& x) {
    if (x)
      set(dotted, json(*x));
  };
  set("asyncByDefault", cfg.async_by_default);
  set("executeWorkers", cfg.execute_workers);
  set("notifierIntervalMs", cfg.notifier_interval_ms);
  set("requireCleanWorktreeLeader", cfg.require_clean_worktree_leader);
  if (cfg.workspace)
    set("workspaceMode", to_string(*cfg.workspace));
  set("telemetry.enabled", cfg.telemetry_enabled);
  auto& l = cfg.limits;
  opt("limits.maxConcurrentWorkers", l.max_concurrent_workers);
  set("limits.allowUnboundedConcurrency", l.allow_unbounded_concurrency);
  opt("limits.maxTaskDepth", l.max_task_depth);
  opt("limits.maxChildrenPerTask", l.max_children_per_task);
  opt("limits.maxRunMinutes", l.max_run_minutes);
  opt("limits.maxRetriesPerTask", l.max_retries_per_task);
  opt("limits.maxTasksPerRun", l.max_tasks_per_run);
  set("limits.heartbeatStaleMs", l.heartbeat_stale_ms);
  set("runtime.mode", to_string(cfg.runtime.mode));
  set("runtime.preferLiveSession", cfg.runtime.prefer_live_session);
  set("runtime.allowChildProcessFallback",
      cfg.runtime.allow_child_process_fallback);
  set("runtime.groupJoin", to_string(cfg.runtime.group_join));
  set("runtime.piMode", to_string(cfg.runtime.pi_mode));
  auto& rel = cfg.reliability;
  set("reliability.autoRetry", rel.auto_retry);
  set("reliability.autoRecover", rel.auto_recover);
  set("reliability.deadletterThreshold", rel.deadletter_threshold);
  auto& rp = rel.retry_policy;
  set("reliability.retryPolicy.maxAttempts", rp.max_attempts);
  set("reliability.retryPolicy.backoffMs", rp.backoff_ms);
  set("reliability.retryPolicy.jitterRatio", rp.jitter_ratio);
  set("reliability.retryPolicy.exponentialFactor", rp.exponential_factor);
  opt("reliability.retryPolicy.retryableErrors", rp.retryable_errors);
  set("reliability.retryPolicy.maxBackoffMs", rp.max_backoff_ms);
  set("reliability.heartbeat.warnMs", rel.heartbeat.warn_ms);
  set("reliability.heartbeat.staleMs", rel.heartbeat.stale_ms);
  set("reliability.heartbeat.deadMs", rel.heartbeat.dead_ms);
  auto& n = cfg.notifications;
  set("notifications.enabled", n.enabled);
  set("notifications.severityFilter", n.severity_filter);
  set("notifications.dedupWindowMs", n.dedup_window_ms);
  set("notifications.batchWindowMs", n.batch_window_ms);
  opt("notifications.quietHours", n.quiet_hours);
  set("notifications.sinkRetentionDays", n.sink_retention_days);
  set("notifications.deadletterAlertPerHour", n.deadletter_alert_per_hour);
  set("observability.enabled", cfg.observability.enabled);
  set("observability.pollIntervalMs", cfg.observability.poll_interval_ms);
  set("observability.metricRetentionDays",
      cfg.observability.metric_retention_days);
  set("otlp.enabled", cfg.otlp.enabled);
  opt("otlp.endpoint", cfg.otlp.endpoint);
  if (!cfg.otlp.headers.empty())
    set("otlp.headers", cfg.otlp.headers);
  set("otlp.intervalMs", cfg.otlp.interval_ms);
  set("store.fsync", to_string(cfg.store.fsync));
  set("store.snapshotIntervalMs", cfg.store.snapshot_interval_ms);
  set("serve.host", cfg.serve.host);
  set("serve.port", cfg.serve.port);
  opt("serve.token", cfg.serve.token);
  return j;
}

// -- roots --------------------------------------------------------------------

fs::path find_project_root(const fs::path& cwd) {
  std::error_code ec;
  auto start = fs::absolute(cwd, ec).lexically_normal();
  if (ec)
    start = cwd;
  if (start.has_relative_path() && start.filename().empty())
    start = start.parent_path(); // drop a trailing separator
  fs::path home;
  if (auto h = std::getenv("HOME"); h != nullptr && *h != '\0')
    home = fs::path{h}.lexically_normal();
  if (!home.empty() && home.has_relative_path() && home.filename().empty())
    home = home.parent_path();
  static constexpr const char* markers[] = {
    ".git",         ".pi",          ".crew",          ".hg",
    ".svn",         ".factory",     ".omc",           "package.json",
    "pyproject.toml", "Cargo.toml", "go.mod",         "pom.xml",
    "composer.json", "build.gradle", "build.gradle.kts",
  };
  for (auto dir = start;; dir = dir.parent_path()) {
    if (!home.empty() && dir == home)
      break;
    for (auto marker : markers)
      if (fs::exists(dir / marker, ec))
        return dir;
    if (dir == dir.parent_path())
      break;
  }
  return start;
}

fs::path user_config_root() {
  for (auto var : {"PI_TEAMS_HOME", "HOME"})
    if (auto v = std::getenv(var); v != nullptr && *v != '\0')
      return fs::path{v} / ".pi" / "agent";
  return {};
}

fs::path user_config_file() {
  auto root = user_config_root();
  if (root.empty())
    return {};
  return root / "extensions" / "pi-crew" / "config.json";
}

} // namespace crew
