#include "runtime/operations/diagnostics.hpp"

#include <algorithm>
#include <deque>
#include <unordered_map>

#include "messages/errors.hpp"
#include "observability/metrics.hpp"
#include "observability/redact.hpp"
#include "observability/snapshot_json.hpp"
#include "runtime/supervision/event_metrics.hpp"
#include "store/atomic_file.hpp"
#include "store/clock.hpp"
#include "store/paths.hpp"
#include "store/snapshot.hpp"

namespace crew {

namespace fs = std::filesystem;
using json = nlohmann::json;

json event_json(const event_view& ev) {
  json out = json::object();
  out["time"] = std::string{ev.time};
  out["type"] = std::string{ev.type};
  out["runId"] = std::string{ev.run_id};
  if (!ev.task_id.empty())
    out["taskId"] = std::string{ev.task_id};
  if (!ev.message.empty())
    out["message"] = std::string{ev.message};
  if (!ev.data_raw.empty()) {
    auto data = json::parse(ev.data_raw, nullptr, false);
    out["data"] = data.is_discarded() ? json(std::string{ev.data_raw}) : data;
  }
  out["metadata"] = json{{"seq", ev.seq}};
  return out;
}

json events_cursor(const fs::path& events, uint64_t since_seq, uint64_t limit) {
  json list = json::array();
  uint64_t total = 0;
  uint64_t next = since_seq;
  read_options ro;
  ro.since_seq = since_seq;
  for_each_event(
    events,
    [&](const event_view& ev) {
      if (ev.seq <= since_seq)
        return;
      ++total;
      if (list.size() < limit) {
        list.push_back(event_json(ev));
        next = std::max(next, ev.seq);
      }
    },
    ro);
  return json{{"events", std::move(list)}, {"nextSeq", next}, {"total", total}};
}

json recent_events(const fs::path& events, size_t n) {
  std::deque<json> last;
  for_each_event(events, [&](const event_view& ev) {
    last.push_back(event_json(ev));
    if (last.size() > n)
      last.pop_front();
  });
  json out = json::array();
  for (auto& e : last)
    out.push_back(std::move(e));
  return out;
}

run_status run_status_from_log(const fs::path& events) {
  auto status = run_status::queued;
  for_each_event(events, [&](const event_view& ev) {
    if (!ev.type.starts_with("run."))
      return;
    run_status st;
    if (from_string(ev.type.substr(4), st))
      status = st;
  });
  return status;
}

json run_status_json(const run_view& v) {
  auto m = v.manifest;
  m.status = v.replay.status;
  if (!v.replay.summary.empty())
    m.summary = v.replay.summary;
  m.seq = v.replay.last_seq;
  json out{{"manifest", json::parse(manifest_json(m))},
           {"tasks", json::parse(tasks_json(v.manifest.run_id, v.plan,
                                            v.replay.tasks, v.manifest.cwd))}};
  if (!v.replay.violations.empty())
    out["violations"] = v.replay.violations;
  return out;
}

json heartbeat_summary(std::string_view run_id, const json& tasks,
                       std::chrono::system_clock::time_point now,
                       const heartbeat_thresholds& th) {
  uint64_t total = 0, healthy = 0, stale = 0, dead = 0, missing = 0;
  uint64_t g_healthy = 0, g_warn = 0, g_stale = 0, g_dead = 0;
  int64_t worst = 0;
  if (tasks.is_array()) {
    for (auto& t : tasks) {
      auto status = t.value("status", "");
      if (status != "queued" && status != "running")
        continue;
      ++total;
      std::chrono::system_clock::time_point seen;
      auto hb = t.find("heartbeat");
      bool have = hb != t.end() && hb->is_object() && hb->contains("lastSeenAt")
                  && (*hb)["lastSeenAt"].is_string()
                  && parse_iso_time((*hb)["lastSeenAt"].get<std::string>(), seen);
      if (!have) {
        ++missing;
        ++g_dead;
        continue;
      }
      if (hb->contains("alive") && (*hb)["alive"] == false) {
        ++dead;
        ++g_dead;
        worst = std::max(worst, static_cast<int64_t>(th.dead_ms));
        continue;
      }
      auto age = std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(now - seen).count());
      worst = std::max(worst, age);
      if (age > static_cast<int64_t>(th.dead_ms)) {
        ++dead;
        ++g_dead;
      } else if (age > static_cast<int64_t>(th.stale_ms)) {
        ++stale;
        ++g_stale;
      } else if (age > static_cast<int64_t>(th.warn_ms)) {
        ++healthy;
        ++g_warn;
      } else {
        ++healthy;
        ++g_healthy;
      }
    }
  }
  return json{{"runId", std::string{run_id}},
              {"totalTasks", total},
              {"healthy", healthy},
              {"stale", stale},
              {"dead", dead},
              {"missing", missing},
              {"worstStaleMs", worst},
              {"gradient",
               {{"healthy", g_healthy},
                {"warn", g_warn},
                {"stale", g_stale},
                {"dead", g_dead}}}};
}

json redacted_environment(char** envp) {
  json out = json::object();
  for (char** e = envp; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv{*e};
    auto eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0)
      continue;
    auto key = std::string{kv.substr(0, eq)};
    if (is_secret_name(key))
      out[key] = redacted_marker;
    else
      out[key] = std::string{kv.substr(eq + 1)};
  }
  return out;
}

namespace {

std::vector<metric_family> metrics_of_run(const run_view& v,
                                          const fs::path& events) {
  metric_registry registry;
  event_metrics mapping{registry};
  auto plan = std::make_shared<std::vector<planned_task>>(v.plan);
  mapping.apply_log(v.manifest.run_id, v.manifest.team, plan, events.string());
  return registry.collect();
}

} // namespace

json diagnostic_report(const fs::path& crew_root, std::string_view run_id,
                       char** envp, std::chrono::system_clock::time_point now) {
  auto v = load_run(crew_root, run_id); // validates the id, throws not_found
  auto paths = make_run_paths(crew_root, run_id);
  auto status = run_status_json(v);
  auto& tasks = status["tasks"];
  json report = json::object();
  report["schemaVersion"] = 2;
  report["runId"] = std::string{run_id};
  report["exportedAt"] = iso_time(now);
  report["manifest"] = redact(status["manifest"]);
  report["tasks"] = redact(tasks);
  report["recentEvents"] = redact(recent_events(paths.events(), 200));
  report["heartbeat"] = heartbeat_summary(run_id, tasks, now);
  report["agents"] = json::array();
  report["envRedacted"] = redact(redacted_environment(envp));
  report["metricsSnapshot"] = redact(metrics_json(metrics_of_run(v, paths.events())));
  return report;
}

fs::path write_diagnostic(const fs::path& crew_root, std::string_view run_id,
                          char** envp) {
  auto report = diagnostic_report(crew_root, run_id, envp);
  auto paths = make_run_paths(crew_root, run_id);
  auto stamp = report["exportedAt"].get<std::string>();
  std::replace(stamp.begin(), stamp.end(), ':', '-');
  std::replace(stamp.begin(), stamp.end(), '.', '-');
  auto file = paths.artifacts_dir / "diagnostic" / ("diagnostic-" + stamp + ".json");
  write_file_atomic(file, report.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  return file;
}

} // namespace crew
