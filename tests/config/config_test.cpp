#include "config/config.hpp"

#include "messages/errors.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

using namespace crew;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path()
           / ("crew_config_cfg_" + std::to_string(rd()) + "_"
              + std::to_string(
                std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path write(const fs::path& rel, std::string_view content) const {
    auto file = path / rel;
    fs::create_directories(file.parent_path());
    std::ofstream{file, std::ios::binary} << content;
    return file;
  }
};

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const input_error& e) {
    return e.what();
  }
  return "<no error>";
}

std::string json_error(const std::string& text) {
  return error_of([&] { config_from_json(json::parse(text), "/p/.crew/config.json"); });
}

std::string set_error(std::string_view arg) {
  crew_config cfg;
  return error_of([&] { apply_override(cfg, arg); });
}

/// Sets an environment variable for one scope.
struct scoped_env {
  std::string name;
  std::optional<std::string> old;
  scoped_env(std::string n, const char* value) : name(std::move(n)) {
    if (auto v = std::getenv(name.c_str()))
      old = v;
    if (value)
      setenv(name.c_str(), value, 1);
    else
      unsetenv(name.c_str());
  }
  ~scoped_env() {
    if (old)
      setenv(name.c_str(), old->c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};

} // namespace

TEST_CASE("config: defaults match pi-crew's") {
  temp_dir tmp;
  auto cfg = load_config(tmp.path / ".crew", tmp.path / "missing.json");
  CHECK(cfg.files.empty());
  CHECK_FALSE(cfg.async_by_default);
  CHECK(cfg.execute_workers);
  CHECK(cfg.telemetry_enabled);
  CHECK_FALSE(cfg.workspace.has_value());
  CHECK_FALSE(cfg.limits.max_concurrent_workers.has_value());
  CHECK_FALSE(cfg.limits.allow_unbounded_concurrency);
  CHECK_FALSE(cfg.limits.max_task_depth.has_value());
  CHECK_FALSE(cfg.limits.max_run_minutes.has_value());
  CHECK_EQ(cfg.limits.heartbeat_stale_ms, 60000u);
  CHECK_EQ(cfg.runtime.mode, runtime_mode::automatic);
  CHECK_EQ(cfg.runtime.group_join, group_join_mode::smart);
  CHECK_EQ(cfg.runtime.pi_mode, pi_mode::spawn);
  CHECK_FALSE(cfg.reliability.auto_retry);
  CHECK_EQ(cfg.reliability.deadletter_threshold, 3u);
  CHECK_EQ(cfg.reliability.retry_policy.max_attempts, 3u);
  CHECK_EQ(cfg.reliability.retry_policy.backoff_ms, 1000u);
  CHECK_EQ(cfg.reliability.retry_policy.jitter_ratio, doctest::Approx(0.3));
  CHECK_EQ(cfg.reliability.retry_policy.exponential_factor, doctest::Approx(2));
  CHECK_EQ(cfg.reliability.retry_policy.max_backoff_ms, 60000u);
  CHECK_FALSE(cfg.reliability.retry_policy.retryable_errors.has_value());
  CHECK_EQ(cfg.reliability.heartbeat.warn_ms, 30000u);
  CHECK_EQ(cfg.reliability.heartbeat.stale_ms, 60000u);
  CHECK_EQ(cfg.reliability.heartbeat.dead_ms, 300000u);
  CHECK_EQ(cfg.notifications.severity_filter,
           std::vector<std::string>{"warning", "error", "critical"});
  CHECK_EQ(cfg.notifications.dedup_window_ms, 30000u);
  CHECK_EQ(cfg.notifications.deadletter_alert_per_hour, 3u);
  CHECK_EQ(cfg.observability.poll_interval_ms, 5000u);
  CHECK_FALSE(cfg.otlp.enabled);
  CHECK_EQ(cfg.otlp.interval_ms, 60000u);
  CHECK_EQ(cfg.store.fsync, fsync_mode::batch);
  CHECK_EQ(cfg.store.snapshot_interval_ms, 1000u);
  CHECK_EQ(cfg.serve.host, "127.0.0.1");
  CHECK_EQ(cfg.serve.port, 7878);
  CHECK_FALSE(cfg.serve.token.has_value());
}

TEST_CASE("config: project values override user values key by key") {
  temp_dir tmp;
  auto user = tmp.write("user.json", R"({
    "limits": {"maxConcurrentWorkers": 4, "maxTaskDepth": 3},
    "reliability": {"retryPolicy": {"maxAttempts": 5, "backoffMs": 200}},
    "otlp": {"headers": {"a": "1", "b": "2"}},
    "runtime": {"mode": "scaffold"}
  })");
  tmp.write(".crew/config.json", R"({
    "limits": {"maxConcurrentWorkers": 6},
    "reliability": {"retryPolicy": {"maxAttempts": 2}},
    "otlp": {"headers": {"b": "3"}},
    "store": {"fsync": "always"},
    "ui": {"widgetMaxLines": 12}
  })");
  auto cfg = load_config(tmp.path / ".crew", user);
  CHECK_EQ(cfg.files.size(), 2u);
  CHECK_EQ(cfg.limits.max_concurrent_workers, 6u);
  CHECK_EQ(cfg.limits.max_task_depth, 3u);
  CHECK_EQ(cfg.reliability.retry_policy.max_attempts, 2u);
  CHECK_EQ(cfg.reliability.retry_policy.backoff_ms, 200u);
  CHECK_EQ(cfg.otlp.headers, std::map<std::string, std::string>{{"a", "1"}, {"b", "3"}});
  CHECK_EQ(cfg.runtime.mode, runtime_mode::scaffold);
  CHECK_EQ(cfg.store.fsync, fsync_mode::always);
  // keys the core does not use are kept as given
  CHECK_EQ(cfg.values["ui"]["widgetMaxLines"], 12);
}

TEST_CASE("config: agents.overrides entries are replaced per agent name") {
  temp_dir tmp;
  auto user = tmp.write("u.json", R"({"agents": {"overrides": {
    "explorer": {"model": "a", "thinking": "high"}, "critic": {"disabled": true}}}})");
  tmp.write(".crew/config.json", R"({"agents": {"overrides": {"explorer": {"model": false}}}})");
  auto cfg = load_config(tmp.path / ".crew", user);
  CHECK_EQ(cfg.values["agents"]["overrides"]["explorer"], json::parse(R"({"model": false})"));
  CHECK_EQ(cfg.values["agents"]["overrides"]["critic"]["disabled"], true);
}

TEST_CASE("config: a JSON syntax error names the file, line and column") {
  temp_dir tmp;
  auto file = tmp.write(".crew/config.json", "{\n  \"asyncByDefault\": true,\n  oops\n}\n");
  auto msg = error_of([&] { load_config(tmp.path / ".crew", {}); });
  CHECK_EQ(msg.rfind(file.string() + ":3:3: invalid JSON: ", 0), 0u);
}

TEST_CASE("config: a document that is not an object is rejected") {
  temp_dir tmp;
  auto file = tmp.write(".crew/config.json", "[1, 2]");
  CHECK_EQ(error_of([&] { load_config(tmp.path / ".crew", {}); }),
           file.string() + ": the configuration must be a JSON object (got [1,2])");
}

TEST_CASE("config: an error in the user file names that file") {
  temp_dir tmp;
  auto user = tmp.write("u.json", R"({"limits": {"maxTaskDepth": 0}})");
  CHECK_EQ(error_of([&] { load_config(tmp.path / ".crew", user); }),
           user.string() + ": limits.maxTaskDepth: must be an integer between 1 and 100 (got 0)");
}

TEST_CASE("config: an unknown key is an error that suggests the intended key") {
  CHECK_EQ(json_error(R"({"limits": {"maxConcurentWorkers": 2}})"),
           "/p/.crew/config.json: limits.maxConcurentWorkers: unknown key (did "
           "you mean 'maxConcurrentWorkers'?)");
  CHECK_EQ(json_error(R"({"bogus": 1})"), "/p/.crew/config.json: bogus: unknown key");
  CHECK_EQ(json_error(R"({"agents": {"overrides": {"x": {"modle": "m"}}}})"),
           "/p/.crew/config.json: agents.overrides.x.modle: unknown key (did "
           "you mean 'model'?)");
}

TEST_CASE("config: integer bounds and types") {
  CHECK_EQ(json_error(R"({"limits": {"maxConcurrentWorkers": 0}})"),
           "/p/.crew/config.json: limits.maxConcurrentWorkers: must be an "
           "integer between 1 and 1024 (got 0)");
  CHECK_EQ(json_error(R"({"limits": {"maxConcurrentWorkers": 1025}})"),
           "/p/.crew/config.json: limits.maxConcurrentWorkers: must be an "
           "integer between 1 and 1024 (got 1025)");
  CHECK_EQ(json_error(R"({"limits": {"maxConcurrentWorkers": "4"}})"),
           "/p/.crew/config.json: limits.maxConcurrentWorkers: must be an "
           "integer between 1 and 1024 (got \"4\")");
  CHECK_EQ(json_error(R"({"limits": {"maxConcurrentWorkers": 2.5}})"),
           "/p/.crew/config.json: limits.maxConcurrentWorkers: must be an "
           "integer between 1 and 1024 (got 2.5)");
  auto cfg = config_from_json(json::parse(R"({"limits": {"maxConcurrentWorkers": 1024,
    "maxTaskDepth": 100, "maxChildrenPerTask": 1000, "maxRunMinutes": 1440,
    "maxRetriesPerTask": 100, "maxTasksPerRun": 10000, "heartbeatStaleMs": 86400000}})"), "x");
  CHECK_EQ(cfg.limits.max_concurrent_workers, 1024u);
  CHECK_EQ(cfg.limits.max_tasks_per_run, 10000u);
  CHECK_EQ(cfg.limits.heartbeat_stale_ms, 86400000u);
  for (auto bad : {R"({"limits": {"maxChildrenPerTask": 1001}})",
                   R"({"limits": {"maxRunMinutes": 1441}})",
                   R"({"limits": {"maxRetriesPerTask": 0}})",
                   R"({"limits": {"maxTasksPerRun": 10001}})",
                   R"({"limits": {"heartbeatStaleMs": 86400001}})",
                   R"({"reliability": {"retryPolicy": {"maxAttempts": 11}}})",
                   R"({"reliability": {"retryPolicy": {"backoffMs": 99}}})",
                   R"({"reliability": {"retryPolicy": {"maxBackoffMs": 3600001}}})",
                   R"({"reliability": {"deadletterThreshold": 0}})",
                   R"({"store": {"snapshotIntervalMs": -1}})",
                   R"({"otlp": {"intervalMs": 4999}})",
                   R"({"serve": {"port": 65536}})"})
    CHECK_MESSAGE(json_error(bad).find("must be an integer") != std::string::npos, bad);
  CHECK_EQ(json_error(R"({"otlp": {"intervalMs": 10}})"),
           "/p/.crew/config.json: otlp.intervalMs: must be an integer >= 5000 (got 10)");
}

TEST_CASE("config: boolean values must be true or false") {
  CHECK_EQ(json_error(R"({"asyncByDefault": "yes"})"),
           "/p/.crew/config.json: asyncByDefault: must be true or false (got \"yes\")");
  CHECK_EQ(json_error(R"({"limits": {"allowUnboundedConcurrency": 1}})"),
           "/p/.crew/config.json: limits.allowUnboundedConcurrency: must be "
           "true or false (got 1)");
  auto cfg = config_from_json(json::parse(R"({"executeWorkers": false,
    "telemetry": {"enabled": false}, "limits": {"allowUnboundedConcurrency": true}})"), "x");
  CHECK_FALSE(cfg.execute_workers);
  CHECK_FALSE(cfg.telemetry_enabled);
  CHECK(cfg.limits.allow_unbounded_concurrency);
}

TEST_CASE("config: enum values must be one of the listed names") {
  CHECK_EQ(json_error(R"({"runtime": {"mode": "turbo"}})"),
           "/p/.crew/config.json: runtime.mode: must be one of auto, scaffold, "
           "child-process, live-session, sim (got \"turbo\")");
  CHECK_EQ(json_error(R"({"store": {"fsync": true}})"),
           "/p/.crew/config.json: store.fsync: must be one of none, batch, "
           "always (got true)");
  CHECK_NE(json_error(R"({"runtime": {"piMode": "fork"}})").find("runtime.piMode"),
           std::string::npos);
  CHECK_NE(json_error(R"({"workspaceMode": "shared"})").find("workspaceMode: must be one of single, worktree"),
           std::string::npos);
  auto cfg = config_from_json(json::parse(R"({"runtime": {"mode": "child-process",
    "groupJoin": "off", "piMode": "rpc"}, "workspaceMode": "worktree",
    "store": {"fsync": "none"}})"), "x");
  CHECK_EQ(cfg.runtime.mode, runtime_mode::child_process);
  CHECK_EQ(cfg.runtime.group_join, group_join_mode::off);
  CHECK_EQ(cfg.runtime.pi_mode, pi_mode::rpc);
  CHECK_EQ(cfg.workspace, workspace_mode::worktree);
  CHECK_EQ(cfg.store.fsync, fsync_mode::none);
}

TEST_CASE("config: number bounds and types") {
  CHECK_EQ(json_error(R"({"reliability": {"retryPolicy": {"jitterRatio": 1.5}}})"),
           "/p/.crew/config.json: reliability.retryPolicy.jitterRatio: must be "
           "a number between 0 and 1 (got 1.5)");
  CHECK_EQ(json_error(R"({"reliability": {"retryPolicy": {"exponentialFactor": "2"}}})"),
           "/p/.crew/config.json: reliability.retryPolicy.exponentialFactor: "
           "must be a number between 1 and 5 (got \"2\")");
  auto cfg = config_from_json(json::parse(R"({"reliability": {"retryPolicy":
    {"jitterRatio": 0, "exponentialFactor": 5, "retryableErrors": ["timeout*"]}}})"), "x");
  CHECK_EQ(cfg.reliability.retry_policy.jitter_ratio, 0.0);
  CHECK_EQ(cfg.reliability.retry_policy.exponential_factor, 5.0);
  CHECK_EQ(cfg.reliability.retry_policy.retryable_errors,
           std::vector<std::string>{"timeout*"});
}

TEST_CASE("config: strings, lists, maps and patterns are type-checked") {
  CHECK_NE(json_error(R"({"serve": {"token": 5}})").find("serve.token: must be a string (got 5)"),
           std::string::npos);
  CHECK_NE(json_error(R"({"notifications": {"severityFilter": ["error", "loud"]}})")
             .find("notifications.severityFilter: must be an array of: info, warning, error, critical"),
           std::string::npos);
  CHECK_NE(json_error(R"({"notifications": {"quietHours": "22-07"}})")
             .find("notifications.quietHours: must be a string \"HH:MM-HH:MM\""),
           std::string::npos);
  CHECK_NE(json_error(R"({"otlp": {"headers": {"a": 1}}})").find("otlp.headers"),
           std::string::npos);
  CHECK_NE(json_error(R"({"limits": 3})").find("limits: must be an object (got 3)"),
           std::string::npos);
  CHECK_NE(json_error(R"({"agents": {"overrides": {"x": {"tools": "read"}}}})")
             .find("agents.overrides.x.tools: must be an array of strings or false"),
           std::string::npos);
  auto cfg = config_from_json(json::parse(R"({"notifications": {"quietHours": "22:00-07:00",
    "severityFilter": ["error"]}, "serve": {"token": "s3cret"},
    "ui": {"mascotStyle": "armin"}, "autonomous": {"magicKeywords": {"x": ["y"]}}})"), "x");
  CHECK_EQ(cfg.notifications.quiet_hours, "22:00-07:00");
  CHECK_EQ(cfg.notifications.severity_filter, std::vector<std::string>{"error"});
  CHECK_EQ(cfg.serve.token, "s3cret");
}

TEST_CASE("config: --set parses JSON values and falls back to strings") {
  crew_config cfg;
  apply_override(cfg, "limits.maxConcurrentWorkers=5");
  apply_override(cfg, "asyncByDefault=true");
  apply_override(cfg, "runtime.mode=scaffold");
  apply_override(cfg, "reliability.retryPolicy.jitterRatio=0.5");
  apply_override(cfg, "serve.token=12345");
  apply_override(cfg, "notifications.severityFilter=error,critical");
  apply_override(cfg, "reliability.retryPolicy.retryableErrors=[\"a\",\"b\"]");
  apply_override(cfg, "otlp.endpoint=http://localhost:4318/v1/metrics");
  CHECK_EQ(cfg.limits.max_concurrent_workers, 5u);
  CHECK(cfg.async_by_default);
  CHECK_EQ(cfg.runtime.mode, runtime_mode::scaffold);
  CHECK_EQ(cfg.reliability.retry_policy.jitter_ratio, doctest::Approx(0.5));
  CHECK_EQ(cfg.serve.token, "12345");
  CHECK_EQ(cfg.notifications.severity_filter,
           std::vector<std::string>{"error", "critical"});
  CHECK_EQ(cfg.reliability.retry_policy.retryable_errors,
           std::vector<std::string>{"a", "b"});
  CHECK_EQ(cfg.otlp.endpoint, "http://localhost:4318/v1/metrics");
  // a later --set replaces an earlier value, other keys stay
  apply_override(cfg, "limits.maxConcurrentWorkers=7");
  CHECK_EQ(cfg.limits.max_concurrent_workers, 7u);
  CHECK(cfg.async_by_default);
}

TEST_CASE("config: --set overrides values loaded from files") {
  temp_dir tmp;
  tmp.write(".crew/config.json", R"({"limits": {"maxConcurrentWorkers": 2, "maxTaskDepth": 4}})");
  auto cfg = load_config(tmp.path / ".crew", {});
  apply_override(cfg, "limits.maxConcurrentWorkers=9");
  CHECK_EQ(cfg.limits.max_concurrent_workers, 9u);
  CHECK_EQ(cfg.limits.max_task_depth, 4u);
  CHECK_EQ(cfg.files.size(), 1u);
}

TEST_CASE("config: --set errors name the key") {
  CHECK_EQ(set_error("limits.maxConcurrentWorkers=0"),
           "--set limits.maxConcurrentWorkers: must be an integer between 1 and 1024 (got 0)");
  CHECK_EQ(set_error("asyncByDefault=maybe"),
           "--set asyncByDefault: must be true or false (got \"maybe\")");
  CHECK_EQ(set_error("runtime.mode=fast"),
           "--set runtime.mode: must be one of auto, scaffold, child-process, "
           "live-session, sim (got \"fast\")");
  CHECK_EQ(set_error("limits.maxConcurrentWorker=3"),
           "--set limits.maxConcurrentWorker: unknown key (did you mean "
           "'maxConcurrentWorkers'?)");
  CHECK_EQ(set_error("asyncByDefault"), "--set: expected key=value (got 'asyncByDefault')");
  CHECK_EQ(set_error("limits..x=1"), "--set limits..x: empty key segment");
}

TEST_CASE("config: a failed --set leaves the config unchanged") {
  crew_config cfg;
  apply_override(cfg, "limits.maxTaskDepth=3");
  CHECK_THROWS_AS(apply_override(cfg, "limits.maxTaskDepth=0"), input_error);
  CHECK_EQ(cfg.limits.max_task_depth, 3u);
}

TEST_CASE("config: to_json shows defaults and set values in config spelling") {
  crew_config cfg;
  apply_override(cfg, "runtime.mode=child-process");
  apply_override(cfg, "ui.widgetMaxLines=9");
  auto j = to_json(cfg);
  CHECK_EQ(j["runtime"]["mode"], "child-process");
  CHECK_EQ(j["store"]["fsync"], "batch");
  CHECK_EQ(j["reliability"]["retryPolicy"]["maxBackoffMs"], 60000);
  CHECK_EQ(j["ui"]["widgetMaxLines"], 9);
  CHECK_FALSE(j["limits"].contains("maxConcurrentWorkers"));
  CHECK_FALSE(j["serve"].contains("token"));
  // the display form is itself a valid config
  auto round = config_from_json(j, "display");
  CHECK_EQ(round.runtime.mode, runtime_mode::child_process);
}

TEST_CASE("config: find_project_root walks up to the nearest marker") {
  temp_dir tmp;
  scoped_env home{"HOME", "/nonexistent-home-for-test"};
  fs::create_directories(tmp.path / "repo" / "a" / "b");
  tmp.write("repo/Cargo.toml", "");
  CHECK_EQ(find_project_root(tmp.path / "repo" / "a" / "b"), tmp.path / "repo");
  fs::create_directories(tmp.path / "repo" / "a" / ".crew");
  CHECK_EQ(find_project_root(tmp.path / "repo" / "a" / "b"), tmp.path / "repo" / "a");
}

TEST_CASE("config: find_project_root stops at HOME and falls back to cwd") {
  temp_dir tmp;
  fs::create_directories(tmp.path / "home" / "proj" / "sub");
  tmp.write("package.json", "{}"); // above HOME: must not be found
  tmp.write("home/.git/HEAD", ""); // HOME itself never counts
  scoped_env home{"HOME", (tmp.path / "home").c_str()};
  auto cwd = tmp.path / "home" / "proj" / "sub";
  CHECK_EQ(find_project_root(cwd), cwd);
}

TEST_CASE("config: user_config_root prefers PI_TEAMS_HOME over HOME") {
  {
    scoped_env teams{"PI_TEAMS_HOME", "/teams"};
    scoped_env home{"HOME", "/home/u"};
    CHECK_EQ(user_config_root(), fs::path{"/teams/.pi/agent"});
    CHECK_EQ(user_config_file(),
             fs::path{"/teams/.pi/agent/extensions/pi-crew/config.json"});
  }
  {
    scoped_env teams{"PI_TEAMS_HOME", nullptr};
    scoped_env home{"HOME", "/home/u"};
    CHECK_EQ(user_config_root(), fs::path{"/home/u/.pi/agent"});
  }
}

TEST_CASE("config: otlp.endpoint must be an http(s) URL and headers single-line tokens") {
  auto bad = [](const char* text) {
    try {
      crew::config_from_json(nlohmann::json::parse(text), "cfg.json");
    } catch (const crew::input_error& e) {
      return std::string{e.what()};
    }
    return std::string{};
  };
  CHECK(bad(R"({"otlp":{"endpoint":"http://127.0.0.1:4318/v1/metrics"}})").empty());
  CHECK(bad(R"({"otlp":{"endpoint":"https://collector.example/v1/metrics"}})").empty());
  CHECK(bad(R"({"otlp":{"endpoint":"ftp://x/v1"}})").find("otlp.endpoint") != std::string::npos);
  CHECK(bad(R"({"otlp":{"endpoint":"http://:99999/"}})").find("otlp.endpoint") != std::string::npos);
  CHECK(bad(R"({"otlp":{"headers":{"Bad Header":"x"}}})").find("otlp.headers") != std::string::npos);
  CHECK(bad(R"({"otlp":{"headers":{"x-token":"a\nb"}}})").find("otlp.headers") != std::string::npos);
  CHECK(bad(R"({"otlp":{"headers":{"x-token":"abc"}}})").empty());
}

// Review F2: a number too large for a double threw nlohmann's out_of_range
// (406), which the loader did not catch: a bare library message without the
// file.
TEST_CASE("config: a number out of a double's range is an input error naming "
          "the file") {
  temp_dir tmp;
  auto file = tmp.write(".crew/config.json",
                        R"({"limits": {"maxTaskDepth": 1e400}})");
  auto msg = error_of([&] { load_config(tmp.path / ".crew", {}); });
  CHECK_EQ(msg, file.string()
                  + ": invalid JSON: number overflow parsing '1e400'");
}

// Review F3: printing a wrong value that is not UTF-8 threw type_error.316
// from json::dump instead of the error naming the key.
TEST_CASE("config: a --set value that is not UTF-8 gets the normal error") {
  CHECK_EQ(set_error("limits.maxConcurrentWorkers=\xff\xfe"),
           "--set limits.maxConcurrentWorkers: must be an integer between 1 "
           "and 1024 (got \"\xEF\xBF\xBD\xEF\xBF\xBD\")");
  CHECK_EQ(set_error("asyncByDefault=a\xc3"),
           "--set asyncByDefault: must be true or false (got \"a\xEF\xBF\xBD\")");
}
