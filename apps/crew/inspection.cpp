#include "inspection.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "crew/crew.hpp"
#include "store/json_writer.hpp"
#include "store/paths.hpp"
#include "store/snapshot.hpp"
#include "store/atomic_file.hpp"

namespace crew::cli {

namespace {

using json = nlohmann::json;

json manifest_for(const crew::run_view& v) {
  auto m = v.manifest;
  m.status = v.replay.status;
  if (!v.replay.summary.empty())
    m.summary = v.replay.summary;
  m.seq = v.replay.last_seq;
  return json::parse(crew::manifest_json(m));
}

/// One line on what a worker reported about a task's last attempt: the
/// model used, the models tried before it, tokens. Empty when nothing.
std::string worker_report(const std::string& details) {
  if (details.empty())
    return {};
  auto d = json::parse(details, nullptr, false);
  if (!d.is_object())
    return {};
  std::string used;
  std::vector<std::string> failed;
  for (auto& a : d.value("modelAttempts", json::array())) {
    auto model = a.value("model", std::string{"default"});
    if (a.value("success", false))
      used = model;
    else
      failed.push_back(model + ": " + a.value("error", std::string{"failed"}));
  }
  std::string out;
  if (!used.empty())
    out = "model " + used;
  if (!failed.empty())
    out += fmt::format("{}{} {}", out.empty() ? "" : " ",
                       used.empty() ? "models failed:" : "after",
                       fmt::join(failed, "; "));
  auto u = d.value("usage", json::object());
  auto in = u.value("input", 0), out_tokens = u.value("output", 0);
  if (in != 0 || out_tokens != 0)
    out += fmt::format("{}tokens in {} out {}", out.empty() ? "" : ", ", in,
                       out_tokens);
  return out;
}

int cmd_status(const common_opts& o, const std::string& run_id) {
  auto root = crew::crew_root_for(o.cwd);
  auto v = crew::load_run(root, run_id);
  auto tasks = json::parse(crew::tasks_json(v.manifest.run_id, v.plan,
                                            v.replay.tasks, v.manifest.cwd));
  if (o.json) {
    json out{{"manifest", manifest_for(v)}, {"tasks", tasks}};
    if (!v.replay.violations.empty())
      out["violations"] = v.replay.violations;
    std::cout << out.dump(2) << std::endl;
    return 0;
  }
  auto& m = v.manifest;
  std::cout << "run:       " << m.run_id << "\n"
            << "status:    " << crew::to_string(v.replay.status)
            << (v.owner_alive ? fmt::format(" (executing in pid {})", v.owner_pid)
                              : (v.replay.status == crew::run_status::running
                                   ? " (interrupted: no live owner; crew resume)"
                                   : ""))
            << "\n"
            << "summary:   " << v.replay.summary << "\n"
            << "team:      " << m.team << " / " << m.workflow << "\n"
            << "goal:      " << m.goal << "\n"
            << "created:   " << m.created_at << "\n"
            << "events:    " << v.replay.last_seq
            << (v.replay.torn_tail ? " (torn final line ignored)" : "") << "\n"
            << "tasks:\n";
  for (size_t i = 0; i < v.plan.size(); ++i) {
    auto& t = v.replay.tasks[i];
    std::cout << fmt::format("  - {}: {} ({} -> {}) attempts {}{}\n", v.plan[i].id,
                             crew::to_string(t.status), v.plan[i].role,
                             v.plan[i].agent, t.attempts.size(),
                             t.error.empty() ? "" : " - " + t.error);
    if (auto line = worker_report(t.details); !line.empty())
      std::cout << "      " << line << "\n";
  }
  for (auto& viol : v.replay.violations)
    std::cout << "violation: " << viol << "\n";
  return 0;
}

void print_event(const crew::event_view& ev, bool as_json) {
  if (as_json) {
    std::string line = "{\"time\":";
    crew::append_json_string(line, ev.time);
    line += ",\"type\":";
    crew::append_json_string(line, ev.type);
    line += ",\"runId\":";
    crew::append_json_string(line, ev.run_id);
    if (!ev.task_id.empty()) {
      line += ",\"taskId\":";
      crew::append_json_string(line, ev.task_id);
    }
    if (!ev.message.empty()) {
      line += ",\"message\":";
      crew::append_json_string(line, ev.message);
    }
    if (!ev.data_raw.empty()) {
      line += ",\"data\":";
      line += ev.data_raw;
    }
    line += fmt::format(",\"metadata\":{{\"seq\":{}}}}}", ev.seq);
    std::cout << line << "\n";
  } else {
    std::cout << fmt::format("#{} {} {}{}{}\n", ev.seq, ev.time, ev.type,
                             ev.task_id.empty() ? "" : fmt::format(" {}", ev.task_id),
                             ev.message.empty() ? "" : fmt::format(" · {}", ev.message));
  }
}

int cmd_events(const common_opts& o, const std::string& run_id, uint64_t since,
               bool follow) {
  auto root = crew::crew_root_for(o.cwd);
  auto v = crew::load_run(root, run_id); // validates the id and the run
  auto paths = crew::make_run_paths(root, run_id);
  crew::read_options ro;
  ro.since_seq = since;
  for (;;) {
    auto rep = crew::for_each_event(
      paths.events(), [&](const crew::event_view& ev) { print_event(ev, o.json); },
      ro);
    std::cout << std::flush;
    ro.since_seq = std::max(ro.since_seq, rep.last_seq);
    if (!follow || interrupted || !std::cout)
      return 0; // !std::cout: the reader is gone (`crew events --follow | head`)
    auto now = crew::load_run(root, run_id);
    if (crew::is_terminal(now.replay.status) && now.replay.last_seq <= ro.since_seq)
      return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds{200});
  }
}

int cmd_list(const common_opts& o) {
  auto ctx = crew::load_project(o.cwd, {});
  json out{{"teams", json::array()}, {"workflows", json::array()},
           {"agents", json::array()}, {"runs", json::array()}};
  for (auto& [k, t] : ctx.resources.teams)
    out["teams"].push_back({{"name", t.name}, {"description", t.description},
                            {"source", crew::to_string(t.source)}});
  for (auto& [k, w] : ctx.resources.workflows)
    out["workflows"].push_back({{"name", w.name}, {"description", w.description},
                                {"source", crew::to_string(w.source)}});
  for (auto& [k, a] : ctx.resources.agents)
    out["agents"].push_back({{"name", a.name}, {"description", a.description},
                             {"source", crew::to_string(a.source)},
                             {"backend", a.command.empty() ? "pi" : "command"}});
  std::vector<crew::run_manifest> runs;
  for (auto& id : crew::list_run_ids(ctx.crew_root)) {
    try {
      auto p = crew::make_run_paths(ctx.crew_root, id);
      runs.push_back(crew::parse_manifest(crew::read_file(p.manifest()),
                                          p.manifest().string()));
    } catch (const std::exception&) {
      // a run without a readable manifest is not listed
    }
  }
  std::sort(runs.begin(), runs.end(), [](auto& a, auto& b) {
    return a.created_at > b.created_at;
  });
  if (runs.size() > 10)
    runs.resize(10);
  for (auto& m : runs)
    out["runs"].push_back({{"runId", m.run_id}, {"status", crew::to_string(m.status)},
                           {"team", m.team}, {"workflow", m.workflow},
                           {"createdAt", m.created_at}, {"goal", m.goal}});
  if (o.json) {
    std::cout << out.dump(2) << std::endl;
    return 0;
  }
  for (const char* section : {"teams", "workflows", "agents"}) {
    std::cout << section << ":\n";
    for (auto& e : out[section])
      std::cout << "  - " << e["name"].get<std::string>() << " ("
                << e["source"].get<std::string>() << "): "
                << e["description"].get<std::string>() << "\n";
  }
  std::cout << "recent runs:\n";
  for (auto& r : out["runs"])
    std::cout << "  - " << r["runId"].get<std::string>() << " "
              << r["status"].get<std::string>() << " (" << r["team"].get<std::string>()
              << "/" << r["workflow"].get<std::string>() << ") "
              << r["goal"].get<std::string>() << "\n";
  return 0;
}

int cmd_validate(const common_opts& o) {
  auto ctx = crew::load_project(o.cwd, {});
  auto issues = crew::validate_resources(ctx.resources);
  for (auto& [name, wf] : ctx.resources.workflows) // text a run could not write
    for (auto& issue : crew::step_text_issues(wf))
      issues.push_back(std::move(issue));
  size_t errors = 0;
  json arr = json::array();
  for (auto& i : issues) {
    errors += i.error ? 1 : 0;
    arr.push_back({{"severity", i.error ? "error" : "warning"}, {"file", i.file},
                   {"where", i.where}, {"message", i.message}});
  }
  if (o.json) {
    std::cout << json{{"ok", errors == 0}, {"issues", arr},
                      {"agents", ctx.resources.agents.size()},
                      {"teams", ctx.resources.teams.size()},
                      {"workflows", ctx.resources.workflows.size()}}
                   .dump(2)
              << std::endl;
  } else {
    for (auto& i : issues)
      std::cerr << (i.error ? "error: " : "warning: ") << i.to_string() << "\n";
    std::cout << fmt::format("{} agents, {} teams, {} workflows, config ok: {} "
                             "error(s), {} warning(s)\n",
                             ctx.resources.agents.size(), ctx.resources.teams.size(),
                             ctx.resources.workflows.size(), errors,
                             issues.size() - errors);
  }
  return errors == 0 ? 0 : 2;
}

struct events_opts : run_opts {
  uint64_t since = 0;
  bool follow = false;
};

} // namespace

void add_validate_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<common_opts>();
  auto validate = app.add_subcommand("validate", "validate agents, teams, workflows and config");
  add_common(validate, *o);
  commands.add(validate, [o] { return cmd_validate(*o); });
}

void add_list_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<common_opts>();
  auto list = app.add_subcommand("list", "teams, workflows, agents and recent runs");
  add_common(list, *o);
  commands.add(list, [o] { return cmd_list(*o); });
}

void add_status_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<run_opts>();
  auto status = app.add_subcommand("status", "manifest, tasks, attempts of a run");
  add_run_opts(status, *o);
  commands.add(status, [o] { return cmd_status(*o, o->run_id); });
}

void add_events_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<events_opts>();
  auto events = app.add_subcommand("events", "the event log of a run");
  add_run_opts(events, *o);
  events->add_option("--since", o->since, "only events with seq > SEQ");
  events->add_flag("--follow", o->follow, "keep printing new events until the run ends");
  commands.add(events, [o] { return cmd_events(*o, o->run_id, o->since, o->follow); });
}

} // namespace crew::cli
