// crew: the command line front-end. Thin: parse, call the runtime API, print.

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <spawn.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <fcntl.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "crew/crew.hpp"
#include "diag.hpp"
#include "doctor.hpp"
#include "reliability.hpp"
#include "serve.hpp"
#include "runtime/workers/worktree.hpp"
#include "messages/errors.hpp"
#include "store/json_writer.hpp"
#include "store/paths.hpp"
#include "store/snapshot.hpp"
#include "store/atomic_file.hpp"

extern char** environ;

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::atomic<bool> interrupted{false};

void on_signal(int) {
  interrupted = true;
}

struct common_opts {
  std::string cwd = ".";
  bool json = false;
};

void add_common(CLI::App* cmd, common_opts& o) {
  cmd->add_option("--cwd", o.cwd, "project directory (state lives in <root>/.crew)");
  cmd->add_flag("--json", o.json, "machine-readable output on stdout");
}

json counts_json(const crew::run_progress& p) {
  json out = json::object();
  auto put = [&](const char* key, uint32_t n) {
    if (n > 0)
      out[key] = n;
  };
  put("completed", p.completed);
  put("failed", p.failed);
  put("skipped", p.skipped);
  put("cancelled", p.cancelled);
  put("running", p.running);
  put("queued", p.queued);
  return out;
}

std::string progress_line(const crew::run_progress& p) {
  return fmt::format("{}: done {}/{}  running {}  queued {}  failed {}{}{}",
                     p.run_id, p.completed + p.failed + p.skipped + p.cancelled,
                     p.total, p.running, p.queued, p.failed,
                     p.skipped ? fmt::format("  skipped {}", p.skipped) : "",
                     p.cancelled ? fmt::format("  cancelled {}", p.cancelled)
                                 : "");
}

/// CPU time (user + system) of this process and its threads, not of its
/// workers: the orchestrator's own cost of a run.
uint64_t own_cpu_ms() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& t) {
    return static_cast<uint64_t>(t.tv_sec) * 1000 + static_cast<uint64_t>(t.tv_usec) / 1000;
  };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

/// Executes a prepared run in the foreground with live progress.
int execute(const crew::project_context& ctx, const crew::node_options& node,
            crew::run_setup_ptr setup, const common_opts& o) {
  auto run_id = setup->manifest.run_id;
  auto paths = setup->paths;
  if (!o.json)
    std::cout << "run " << run_id << " (" << setup->plan.size() << " tasks, "
              << crew::to_string(setup->backend) << ")" << std::endl;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  bool tty = ::isatty(STDERR_FILENO) != 0;
  auto last_print = std::chrono::steady_clock::now();
  std::string last_line;
  crew::run_progress final;
  {
    crew::runtime rt{node};
    final = rt.execute(
      setup,
      [&](const crew::run_progress& p) {
        auto line = progress_line(p);
        if (tty) {
          std::cerr << "\r\033[K" << line << std::flush;
        } else {
          auto now = std::chrono::steady_clock::now();
          if (line != last_line && now - last_print >= std::chrono::seconds{1}) {
            std::cerr << line << "\n";
            last_print = now;
          }
        }
        last_line = line;
      },
      &interrupted);
  }
  setup.reset(); // releases the run lock
  if (tty)
    std::cerr << "\r\033[K";
  if (o.json) {
    json out{{"runId", run_id}, {"status", final.status},
             {"tasks", counts_json(final)}, {"cpuMs", own_cpu_ms()}};
    std::cout << out.dump() << std::endl;
  } else {
    std::cout << progress_line(final) << "\n"
              << "status:    " << final.status << "\n"
              << "events:    " << paths.events().string() << "\n"
              << "state:     " << paths.state_dir.string() << "\n"
              << "artifacts: " << paths.artifacts_dir.string() << "\n"
              << "results:   " << (paths.artifacts_dir / "results").string()
              << "\n"
              << "metrics:   "
              << (node.metrics.metrics_dir.empty()
                    ? std::string{"(telemetry disabled)"}
                    : node.metrics.metrics_dir + " (JSONL)")
              << "; crew metrics --cwd " << ctx.project_root.string() << "\n";
  }
  return final.status == "completed" ? 0 : 1;
}

/// Starts `crew <args…>` as a detached background process (own session,
/// stdin /dev/null, output appended to `log`); returns its pid.
int spawn_detached(std::vector<std::string> args, const std::string& log) {
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t pid = 0;
  auto rc = posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv.data(),
                        environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    throw crew::io_error(fmt::format("cannot start a background crew: {}",
                                     std::strerror(rc)));
  return pid;
}

/// Starts `crew resume RUN --start-queued` in the background and hands it
/// the run lock.
int spawn_background(const crew::project_context& ctx,
                     const crew::run_setup& setup,
                     const std::vector<std::string>& overrides) {
  std::vector<std::string> args{"crew", "resume", setup.manifest.run_id,
                                "--start-queued", "--cwd",
                                ctx.project_root.string()};
  for (auto& kv : overrides) {
    args.push_back("--set");
    args.push_back(kv);
  }
  auto pid = spawn_detached(std::move(args),
                            (setup.paths.state_dir / "background.log").string());
  crew::hand_over_run_lock(setup, pid);
  return pid;
}

/// A node starting on a state root looks for interrupted runs: with
/// reliability.autoRecover each is recovered by a background crew, else the
/// user is told how to.
void check_interrupted(const crew::project_context& ctx) {
  std::vector<crew::recovery_plan> plans;
  try {
    plans = crew::find_interrupted(ctx.crew_root, {});
  } catch (const std::exception&) {
    return; // a damaged run is reported by the commands that read it
  }
  for (auto& p : plans) {
    if (ctx.config.reliability.auto_recover) {
      auto log = (crew::make_run_paths(ctx.crew_root, p.run_id).state_dir
                  / "background.log")
                   .string();
      auto pid = spawn_detached({"crew", "recover", "--apply", p.run_id, "--cwd",
                                 ctx.project_root.string()},
                                log);
      std::cerr << "crew: recovering interrupted run " << p.run_id << " ("
                << p.resumable_tasks.size()
                << " interrupted attempt(s)) in the background, pid " << pid
                << "\n";
    } else {
      std::cerr << "crew: run " << p.run_id
                << " was interrupted; `crew recover --apply " << p.run_id
                << "` continues it, `--decline` cancels it\n";
    }
  }
}

// -- read-only views ------------------------------------------------------------

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
    if (!follow || interrupted)
      return 0;
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

int cmd_plan(const common_opts& o, const std::string& team,
             const std::string& workflow, const std::vector<std::string>& sets) {
  auto ctx = crew::load_project(o.cwd, sets);
  auto pr = crew::plan_run(ctx, team, workflow);
  json tasks = json::array();
  for (auto& t : pr.plan)
    tasks.push_back({{"id", t.id}, {"stepId", t.step_id}, {"role", t.role},
                     {"agent", t.agent}, {"dependsOn", t.depends_on}});
  if (o.json) {
    std::cout << json{{"team", pr.team.name}, {"workflow", pr.workflow.name},
                      {"maxConcurrent", pr.concurrency.max_concurrent},
                      {"concurrencyReason", pr.concurrency.reason},
                      {"tasks", tasks}}
                   .dump(2)
              << std::endl;
    return 0;
  }
  std::cout << "team " << pr.team.name << ", workflow " << pr.workflow.name
            << ", concurrency " << pr.concurrency.max_concurrent << " ("
            << pr.concurrency.reason << ")\n";
  for (auto& t : pr.plan) {
    std::string deps;
    for (auto& d : t.depends_on)
      deps += (deps.empty() ? " <- " : ", ") + d;
    std::cout << "  " << t.id << " [" << t.role << " -> " << t.agent << "]" << deps
              << "\n";
  }
  for (auto& w : pr.warnings)
    std::cerr << "warning: " << w.to_string() << "\n";
  return 0;
}

/// `crew cleanup RUN [--force]`: the run's worktrees (workspaceMode
/// worktree). A running run is refused: its tasks use them.
int cmd_cleanup(const common_opts& o, const std::string& run_id, bool force) {
  auto root = crew::crew_root_for(o.cwd);
  auto v = crew::load_run(root, run_id);
  if (v.owner_alive)
    throw crew::input_error(fmt::format(
      "run '{}' is executing in pid {}: cancel it or wait before cleaning up "
      "its worktrees", run_id, v.owner_pid));
  auto paths = crew::make_run_paths(root, run_id);
  auto report = crew::cleanup_run_worktrees(v.manifest.cwd, root, run_id,
                                            paths.artifacts_dir, force);
  if (o.json) {
    std::cout << json{{"runId", run_id},
                      {"removed", report.removed},
                      {"preserved", report.preserved},
                      {"artifacts", report.artifacts},
                      {"errors", report.errors}}
                   .dump()
              << std::endl;
  } else {
    for (auto& x : report.removed)
      std::cout << "removed    " << x << "\n";
    for (auto& x : report.preserved)
      std::cout << "preserved  " << x << " (dirty; crew cleanup " << run_id
                << " --force removes it)\n";
    for (auto& x : report.artifacts)
      std::cout << "diff       " << x << "\n";
    for (auto& x : report.errors)
      std::cout << "error      " << x << "\n";
    if (report.removed.empty() && report.preserved.empty() && report.errors.empty())
      std::cout << "no worktrees for run " << run_id << "\n";
  }
  return report.errors.empty() ? 0 : 1;
}

int cmd_cancel(const common_opts& o, const std::string& run_id) {
  auto root = crew::crew_root_for(o.cwd);
  auto outcome = crew::cancel_run(root, run_id);
  auto v = crew::load_run(root, run_id);
  const char* what = "";
  switch (outcome) {
    case crew::cancel_outcome::requested:
      what = "cancelled (workers stopped by the owning process)";
      break;
    case crew::cancel_outcome::cancelled_offline:
      what = "cancelled (no live owner; cancelled in its log)";
      break;
    case crew::cancel_outcome::already_terminal:
      what = "already finished; nothing to cancel";
      break;
    case crew::cancel_outcome::timed_out:
      what = "cancel requested; the owning process has not confirmed yet";
      break;
  }
  if (o.json)
    std::cout << json{{"runId", run_id},
                      {"status", crew::to_string(v.replay.status)},
                      {"outcome", what}}
                   .dump()
              << std::endl;
  else
    std::cout << run_id << ": " << crew::to_string(v.replay.status) << " - "
              << what << "\n";
  return outcome == crew::cancel_outcome::timed_out ? 1 : 0;
}

long peak_rss_kb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

long current_rss_kb() {
  long pages = 0, resident = 0;
  if (auto f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    std::fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/// Observability settings of a load test.
struct loadtest_observability {
  bool enabled = true;       ///< metric sink on
  bool jsonl = false;        ///< JSONL metric sink
  uint64_t interval_ms = 1000;
  std::string otlp_endpoint; ///< live OTLP exporter when set
};

int cmd_loadtest(const common_opts& o, crew::loadtest_options lo,
                 const std::string& shape, const std::string& fsync, bool keep,
                 uint64_t baseline_msgs, const loadtest_observability& obs) {
  if (!crew::from_string(shape, lo.shape))
    throw crew::input_error(fmt::format(
      "--shape: unknown shape '{}' (fanout, chain, diamond, random)", shape));
  crew::fsync_policy policy;
  if (!crew::from_string(fsync, policy))
    throw crew::input_error(fmt::format(
      "--fsync: unknown policy '{}' (none, batch, always)", fsync));
  auto root = crew::crew_root_for(o.cwd);
  auto rss_before = current_rss_kb();
  crew::node_options node;
  node.fsync = policy;
  node.metrics_enabled = obs.enabled;
  if (obs.jsonl) {
    node.metrics.metrics_dir = (root / "state" / "metrics").string();
    node.metrics.jsonl_interval_ms = obs.interval_ms;
  }
  if (!obs.otlp_endpoint.empty()) {
    node.metrics.otlp = true;
    node.metrics.otlp_endpoint = obs.otlp_endpoint;
    node.metrics.otlp_interval_ms = obs.interval_ms;
  }
  crew::runtime rt{node};
  double baseline = baseline_msgs > 0 ? rt.message_rate_baseline(baseline_msgs) : 0;
  lo.fsync = policy;
  auto setup = crew::prepare_loadtest(root, lo);
  auto paths = setup->paths;
  const auto& plan_copy = setup->plan;
  auto t0 = std::chrono::steady_clock::now();
  auto final = rt.execute(setup, nullptr, &interrupted);
  auto peak_run = peak_rss_kb();
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                .count();
  auto peak = peak_run;
  // Invariants: from the log alone.
  auto replay = crew::replay_log(paths.events(), plan_copy);
  std::vector<std::string> problems = replay.violations;
  size_t terminal = 0;
  for (auto& t : replay.tasks)
    terminal += crew::is_terminal(t.status) ? 1 : 0;
  bool all_terminal = terminal == plan_copy.size();
  if (!all_terminal)
    problems.push_back(fmt::format("{} of {} tasks not terminal in the log",
                                   plan_copy.size() - terminal, plan_copy.size()));
  if (!replay.seq_contiguous)
    problems.push_back(fmt::format("seq gap at {}", replay.first_gap_seq));
  if (replay.last_seq != final.events)
    problems.push_back(fmt::format("log ends at seq {} but the run wrote {}",
                                   replay.last_seq, final.events));
  bool replay_matches = true;
  try {
    auto snap = crew::parse_tasks(crew::read_file(paths.tasks()), plan_copy,
                                  paths.tasks().string());
    for (size_t i = 0; i < plan_copy.size(); ++i) {
      auto& a = snap[i];
      auto& b = replay.tasks[i];
      if (a.status != b.status || a.error != b.error || a.started_at != b.started_at
          || a.finished_at != b.finished_at) {
        replay_matches = false;
        problems.push_back(fmt::format(
          "task {}: final state {} but replay gives {}", plan_copy[i].id,
          crew::to_string(a.status), crew::to_string(b.status)));
        break;
      }
    }
  } catch (const std::exception& e) {
    replay_matches = false;
    problems.push_back(std::string{"final snapshot unreadable: "} + e.what());
  }
  uint32_t counted = final.completed + final.failed + final.skipped + final.cancelled;
  if (counted != plan_copy.size())
    problems.push_back(fmt::format("run reported {} terminal tasks of {}", counted,
                                   plan_copy.size()));
  bool ok = problems.empty();
  double tps = static_cast<double>(lo.tasks) / secs;
  double rss_per_task = static_cast<double>(peak - rss_before) * 1024.0
                        / static_cast<double>(lo.tasks);
  setup.reset(); // releases the run lock
  if (!keep) {
    std::error_code ec;
    fs::remove_all(paths.state_dir, ec);
    fs::remove_all(paths.artifacts_dir, ec);
  }
  if (o.json) {
    json out{{"tasks", lo.tasks},
             {"shape", shape},
             {"concurrency", lo.concurrency},
             {"fsync", fsync},
             {"fail_rate", lo.fail_rate},
             {"retry_attempts", lo.retry_attempts},
             {"status", final.status},
             {"counts", counts_json(final)},
             {"elapsed_ms", secs * 1000},
             {"tasks_per_sec", tps},
             {"latency_p50_ms", final.latency_p50_us / 1000},
             {"latency_p99_ms", final.latency_p99_us / 1000},
             {"events", final.events},
             {"peak_rss_kb", peak},
             {"rss_per_task_bytes", rss_per_task},
             {"baseline_caf_msgs_per_sec", baseline},
             {"observability", {{"metrics", obs.enabled},
                                {"jsonl", obs.jsonl},
                                {"otlp", !obs.otlp_endpoint.empty()}}},
             {"invariants", {{"ok", ok},
                             {"every_task_one_terminal_state", all_terminal},
                             {"seq_contiguous", replay.seq_contiguous},
                             {"replay_matches_final_states", replay_matches},
                             {"problems", problems}}}};
    if (keep)
      out["runId"] = final.run_id;
    std::cout << out.dump() << std::endl;
  } else {
    std::cout << fmt::format(
      "loadtest: {} tasks, shape {}, concurrency {}, fsync {}\n"
      "  status           {}\n"
      "  elapsed          {:.1f} ms\n"
      "  tasks/s          {:.0f}\n"
      "  latency p50/p99  {:.3f} / {:.3f} ms (ready -> durably done)\n"
      "  events written   {}\n"
      "  peak RSS         {} KiB ({:.0f} bytes per task)\n"
      "  baseline         {:.0f} CAF messages/s (two actors, batches of 256)\n"
      "  invariants       {}\n",
      lo.tasks, shape, lo.concurrency, fsync, final.status, secs * 1000, tps,
      final.latency_p50_us / 1000, final.latency_p99_us / 1000, final.events, peak,
      rss_per_task, baseline, ok ? "ok" : "FAILED");
    for (auto& p : problems)
      std::cout << "    - " << p << "\n";
    if (keep)
      std::cout << "  run kept:        " << paths.state_dir.string() << "\n";
  }
  return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"crew: run teams of worker agents through durable DAG workflows"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "crew 0.1.0");

  common_opts o;
  std::string team = "default", workflow, goal, run_id;
  std::vector<std::string> sets;
  bool async = false, follow = false, keep = false;
  uint64_t since = 0;

  auto run = app.add_subcommand("run", "create and execute a run (exit 0 iff it completed)");
  add_common(run, o);
  run->add_option("--team", team, "team name")->capture_default_str();
  run->add_option("--workflow", workflow, "workflow (default: the team's)");
  run->add_option("--goal", goal, "the goal, substituted for {goal}")->required();
  run->add_flag("--async", async, "run in a background process; print the run id");
  run->add_option("--set", sets, "config override key=value (repeatable)");

  auto plan = app.add_subcommand("plan", "validate and show the task graph without running");
  add_common(plan, o);
  plan->add_option("--team", team, "team name")->capture_default_str();
  plan->add_option("--workflow", workflow, "workflow (default: the team's)");
  plan->add_option("--set", sets, "config override key=value (repeatable)");

  auto validate = app.add_subcommand("validate", "validate agents, teams, workflows and config");
  add_common(validate, o);
  auto list = app.add_subcommand("list", "teams, workflows, agents and recent runs");
  add_common(list, o);

  auto status = app.add_subcommand("status", "manifest, tasks, attempts of a run");
  add_common(status, o);
  status->add_option("run", run_id, "run id")->required();

  auto events = app.add_subcommand("events", "the event log of a run");
  add_common(events, o);
  events->add_option("run", run_id, "run id")->required();
  events->add_option("--since", since, "only events with seq > SEQ");
  events->add_flag("--follow", follow, "keep printing new events until the run ends");

  bool force = false;
  auto cleanup = app.add_subcommand(
    "cleanup", "remove a run's git worktrees and branches (dirty ones are kept, "
               "their diff saved, unless --force)");
  add_common(cleanup, o);
  cleanup->add_option("run", run_id, "run id")->required();
  cleanup->add_flag("--force", force,
                    "also remove dirty worktrees (after saving their diff)");

  auto cancel = app.add_subcommand("cancel", "stop a run and kill its workers");
  add_common(cancel, o);
  cancel->add_option("run", run_id, "run id")->required();

  bool start_queued = false;
  auto resume = app.add_subcommand("resume", "requeue unfinished tasks and run again");
  add_common(resume, o);
  resume->add_option("run", run_id, "run id")->required();
  resume->add_flag("--start-queued", start_queued,
                   "only start a created, never started run (used by run --async)")
    ->group("");
  resume->add_option("--set", sets, "config override key=value (repeatable)");

  crew::loadtest_options lo;
  std::string shape = "fanout", fsync = "batch";
  uint64_t baseline_msgs = 2'000'000;
  crew::cli::serve_options serve_o;
  auto serve = app.add_subcommand("serve", "long-lived node: HTTP API and Prometheus /metrics");
  add_common(serve, o);
  serve->add_option("--host", serve_o.host, "listen address (default: serve.host, 127.0.0.1)");
  serve->add_option("--port", serve_o.port, "listen port, 0 picks a free one (default: serve.port, 7878)");
  serve->add_option("--token", serve_o.token, "API token (required for a non-loopback host)");

  crew::cli::metrics_options metrics_o;
  auto metrics = app.add_subcommand("metrics", "metric snapshot (from the live serve, else the logs)");
  add_common(metrics, o);
  metrics->add_option("--format", metrics_o.format, "prometheus or json")->capture_default_str();
  metrics->add_option("--filter", metrics_o.filter, "only families whose name matches GLOB");

  auto diag = app.add_subcommand("diag", "write a redacted diagnostic report of a run, print its path");
  add_common(diag, o);
  diag->add_option("run", run_id, "run id")->required();

  auto doctor = app.add_subcommand("doctor", "check pi, node, config, agents, state root and git (exit 1 on an error)");
  add_common(doctor, o);

  auto verify = app.add_subcommand("verify", "replay a run's log and check its invariants (exit 1 on a violation)");
  add_common(verify, o);
  verify->add_option("run", run_id, "run id")->required();

  std::vector<std::string> recover_runs;
  bool recover_apply = false, recover_decline = false;
  auto recover = app.add_subcommand("recover", "show, apply or decline recovery plans of interrupted runs");
  add_common(recover, o);
  recover->add_option("runs", recover_runs, "run ids (default: every interrupted run)");
  recover->add_flag("--apply", recover_apply, "requeue the interrupted attempts and continue each run here");
  recover->add_flag("--decline", recover_decline, "cancel each run with reason interrupted-not-resumed");
  recover->add_option("--set", sets, "config override key=value (repeatable)");

  std::string dl_task, dl_reason = "manual";
  auto deadletter = app.add_subcommand("deadletter", "list a run's deadletter entries, or deadletter a task by hand");
  add_common(deadletter, o);
  deadletter->add_option("run", run_id, "run id")->required();
  deadletter->add_option("--task", dl_task, "deadletter this task (id or step id) by hand");
  deadletter->add_option("--reason", dl_reason, "with --task: manual")->capture_default_str();

  auto load = app.add_subcommand("loadtest", "simulated-worker load test with invariant checks");
  add_common(load, o);
  load->add_option("--tasks", lo.tasks, "number of tasks")->capture_default_str();
  load->add_option("--shape", shape, "fanout, chain, diamond or random")->capture_default_str();
  load->add_option("--concurrency", lo.concurrency, "parallel sim workers")->capture_default_str();
  load->add_option("--fail-rate", lo.fail_rate, "share of attempts that fail")->capture_default_str();
  load->add_option("--hang-rate", lo.hang_rate, "share of attempts that hang until the attempt timeout")->capture_default_str();
  load->add_option("--crash-rate", lo.crash_rate, "share of attempts whose worker crashes")->capture_default_str();
  load->add_option("--latency-ms", lo.latency_ms, "mean simulated task latency")->capture_default_str();
  load->add_option("--seed", lo.seed, "seed of the simulation")->capture_default_str();
  load->add_option("--fsync", fsync, "none, batch or always")->capture_default_str();
  load->add_option("--baseline-messages", baseline_msgs, "messages for the raw CAF baseline (0: skip)")->capture_default_str();
  load->add_flag("--keep", keep, "keep the run's state directory");
  load->add_option("--retry-attempts", lo.retry_attempts,
                   "attempts per task (> 1 turns retries on)")
    ->capture_default_str();
  load->add_option("--backoff-ms", lo.backoff_ms, "first retry delay")
    ->capture_default_str();
  loadtest_observability lobs;
  std::string metrics_mode = "on";
  load->add_option("--metrics", metrics_mode, "metric sink on or off")
    ->check(CLI::IsMember({"on", "off"}))
    ->capture_default_str();
  load->add_flag("--metrics-jsonl", lobs.jsonl,
                 "write JSONL metric snapshots under .crew/state/metrics");
  load->add_option("--otlp-endpoint", lobs.otlp_endpoint,
                   "push OTLP/HTTP JSON metrics to this URL");
  load->add_option("--export-interval-ms", lobs.interval_ms,
                   "JSONL and OTLP export interval")
    ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  try {
    if (*run) {
      auto ctx = crew::load_project(o.cwd, sets);
      auto node = crew::node_options_for(ctx); // validated before any write
      auto pr = crew::plan_run(ctx, team, workflow);
      check_interrupted(ctx);
      for (auto& w : pr.warnings)
        std::cerr << "warning: " << w.to_string() << "\n";
      auto setup = crew::prepare_run(ctx, pr, goal);
      if (async || ctx.config.async_by_default) {
        auto id = setup->manifest.run_id;
        auto pid = spawn_background(ctx, *setup, sets);
        setup.reset(); // the lock now belongs to the background runner
        if (o.json)
          std::cout << json{{"runId", id}, {"status", "queued"}, {"async", true},
                            {"pid", pid}}
                         .dump()
                    << std::endl;
        else
          std::cout << "run " << id << " started in the background (pid " << pid
                    << "); follow it with: crew events " << id << " --follow --cwd "
                    << ctx.project_root.string() << "\n";
        return 0;
      }
      return execute(ctx, node, std::move(setup), o);
    }
    if (*resume) {
      auto ctx = crew::load_project(o.cwd, sets);
      auto node = crew::node_options_for(ctx);
      return execute(ctx, node,
                     crew::prepare_resume(ctx, run_id,
                                          start_queued
                                            ? crew::resume_mode::start_queued
                                            : crew::resume_mode::resume),
                     o);
    }
    if (*plan)
      return cmd_plan(o, team, workflow, sets);
    if (*validate)
      return cmd_validate(o);
    if (*list)
      return cmd_list(o);
    if (*status)
      return cmd_status(o, run_id);
    if (*events)
      return cmd_events(o, run_id, since, follow);
    if (*cancel)
      return cmd_cancel(o, run_id);
    if (*cleanup)
      return cmd_cleanup(o, run_id, force);
    if (*serve) {
      check_interrupted(crew::load_project(o.cwd, {}));
      serve_o.cwd = o.cwd;
      serve_o.json = o.json;
      return crew::cli::cmd_serve(serve_o);
    }
    if (*metrics) {
      metrics_o.cwd = o.cwd;
      metrics_o.json = o.json;
      return crew::cli::cmd_metrics(metrics_o);
    }
    if (*diag)
      return crew::cli::cmd_diag(o.cwd, run_id, o.json);
    if (*doctor)
      return crew::cli::cmd_doctor(o.cwd, o.json);
    if (*verify)
      return crew::cli::cmd_verify(o.cwd, run_id, o.json);
    if (*recover)
      return crew::cli::cmd_recover(o.cwd, recover_runs, recover_apply,
                                    recover_decline, o.json, sets);
    if (*deadletter)
      return crew::cli::cmd_deadletter(o.cwd, run_id, dl_task, dl_reason, o.json);
    if (*load) {
      lobs.enabled = metrics_mode == "on";
      return cmd_loadtest(o, lo, shape, fsync, keep, baseline_msgs, lobs);
    }
  } catch (const crew::input_error& e) {
    std::cerr << "crew: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "crew: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
