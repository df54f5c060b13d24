#include "loadtest.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "crew/crew.hpp"
#include "messages/errors.hpp"
#include "store/paths.hpp"
#include "store/snapshot.hpp"
#include "store/atomic_file.hpp"

namespace crew::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

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

/// The options of `crew loadtest`.
struct loadtest_opts : common_opts {
  crew::loadtest_options lo;
  std::string shape = "fanout", fsync = "batch";
  uint64_t baseline_msgs = 2'000'000;
  bool keep = false;
  std::string metrics_mode = "on";
  loadtest_observability obs;
};

/// What a load test measured.
struct loadtest_measures {
  crew::run_progress final;
  double secs = 0;
  long peak = 0;
  long rss_before = 0;
  double baseline = 0;
  double tps = 0;
  double rss_per_task = 0;
};

/// What a load test checks from the log alone (and the final snapshot).
struct loadtest_invariants {
  std::vector<std::string> problems;
  bool all_terminal = false;
  bool seq_contiguous = false;
  bool replay_matches = true;

  bool ok() const {
    return problems.empty();
  }
};

/// The node of a load test: fsync `policy`, the metric sinks `obs` asks for.
crew::node_options loadtest_node(const fs::path& root, crew::fsync_policy policy,
                                 const loadtest_observability& obs) {
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
  return node;
}

loadtest_invariants check_invariants(const crew::run_paths& paths,
                                     const std::vector<crew::planned_task>& plan_copy,
                                     const crew::run_progress& final) {
  loadtest_invariants inv;
  auto replay = crew::replay_log(paths.events(), plan_copy);
  auto& problems = inv.problems;
  problems = replay.violations;
  size_t terminal = 0;
  for (auto& t : replay.tasks)
    terminal += crew::is_terminal(t.status) ? 1 : 0;
  inv.all_terminal = terminal == plan_copy.size();
  if (!inv.all_terminal)
    problems.push_back(fmt::format("{} of {} tasks not terminal in the log",
                                   plan_copy.size() - terminal, plan_copy.size()));
  inv.seq_contiguous = replay.seq_contiguous;
  if (!replay.seq_contiguous)
    problems.push_back(fmt::format("seq gap at {}", replay.first_gap_seq));
  if (replay.last_seq != final.events)
    problems.push_back(fmt::format("log ends at seq {} but the run wrote {}",
                                   replay.last_seq, final.events));
  try {
    auto snap = crew::parse_tasks(crew::read_file(paths.tasks()), plan_copy,
                                  paths.tasks().string());
    for (size_t i = 0; i < plan_copy.size(); ++i) {
      auto& a = snap[i];
      auto& b = replay.tasks[i];
      if (a.status != b.status || a.error != b.error || a.started_at != b.started_at
          || a.finished_at != b.finished_at) {
        inv.replay_matches = false;
        problems.push_back(fmt::format(
          "task {}: final state {} but replay gives {}", plan_copy[i].id,
          crew::to_string(a.status), crew::to_string(b.status)));
        break;
      }
    }
  } catch (const std::exception& e) {
    inv.replay_matches = false;
    problems.push_back(std::string{"final snapshot unreadable: "} + e.what());
  }
  uint32_t counted = final.completed + final.failed + final.skipped + final.cancelled;
  if (counted != plan_copy.size())
    problems.push_back(fmt::format("run reported {} terminal tasks of {}", counted,
                                   plan_copy.size()));
  return inv;
}

void print_json_report(const loadtest_opts& o, const loadtest_measures& m,
                       const loadtest_invariants& inv) {
  const auto& lo = o.lo;
  const auto& obs = o.obs;
  const auto& final = m.final;
  json out{{"tasks", lo.tasks},
           {"shape", o.shape},
           {"concurrency", lo.concurrency},
           {"fsync", o.fsync},
           {"fail_rate", lo.fail_rate},
           {"retry_attempts", lo.retry_attempts},
           {"status", final.status},
           {"counts", counts_json(final)},
           {"elapsed_ms", m.secs * 1000},
           {"tasks_per_sec", m.tps},
           {"latency_p50_ms", final.latency_p50_us / 1000},
           {"latency_p99_ms", final.latency_p99_us / 1000},
           {"events", final.events},
           {"peak_rss_kb", m.peak},
           {"rss_per_task_bytes", m.rss_per_task},
           {"baseline_caf_msgs_per_sec", m.baseline},
           {"observability", {{"metrics", obs.enabled},
                              {"jsonl", obs.jsonl},
                              {"otlp", !obs.otlp_endpoint.empty()}}},
           {"invariants", {{"ok", inv.ok()},
                           {"every_task_one_terminal_state", inv.all_terminal},
                           {"seq_contiguous", inv.seq_contiguous},
                           {"replay_matches_final_states", inv.replay_matches},
                           {"problems", inv.problems}}}};
  if (o.keep)
    out["runId"] = final.run_id;
  std::cout << out.dump() << std::endl;
}

void print_text_report(const loadtest_opts& o, const loadtest_measures& m,
                       const loadtest_invariants& inv, const crew::run_paths& paths) {
  const auto& lo = o.lo;
  const auto& final = m.final;
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
    lo.tasks, o.shape, lo.concurrency, o.fsync, final.status, m.secs * 1000, m.tps,
    final.latency_p50_us / 1000, final.latency_p99_us / 1000, final.events, m.peak,
    m.rss_per_task, m.baseline, inv.ok() ? "ok" : "FAILED");
  for (auto& p : inv.problems)
    std::cout << "    - " << p << "\n";
  if (o.keep)
    std::cout << "  run kept:        " << paths.state_dir.string() << "\n";
}

int cmd_loadtest(const loadtest_opts& o) {
  auto lo = o.lo;
  if (!crew::from_string(o.shape, lo.shape))
    throw crew::input_error(fmt::format(
      "--shape: unknown shape '{}' (fanout, chain, diamond, random)", o.shape));
  crew::fsync_policy policy;
  if (!crew::from_string(o.fsync, policy))
    throw crew::input_error(fmt::format(
      "--fsync: unknown policy '{}' (none, batch, always)", o.fsync));
  auto root = crew::crew_root_for(o.cwd);
  loadtest_measures m;
  m.rss_before = current_rss_kb();
  crew::runtime rt{loadtest_node(root, policy, o.obs)};
  m.baseline = o.baseline_msgs > 0 ? rt.message_rate_baseline(o.baseline_msgs) : 0;
  lo.fsync = policy;
  auto setup = crew::prepare_loadtest(root, lo);
  auto paths = setup->paths;
  auto t0 = std::chrono::steady_clock::now();
  m.final = rt.execute(setup, nullptr, &interrupted);
  m.peak = peak_rss_kb();
  m.secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
             .count();
  auto inv = check_invariants(paths, setup->plan, m.final);
  m.tps = static_cast<double>(lo.tasks) / m.secs;
  m.rss_per_task = static_cast<double>(m.peak - m.rss_before) * 1024.0
                   / static_cast<double>(lo.tasks);
  setup.reset(); // releases the run lock
  if (!o.keep) {
    std::error_code ec;
    fs::remove_all(paths.state_dir, ec);
    fs::remove_all(paths.artifacts_dir, ec);
  }
  if (o.json)
    print_json_report(o, m, inv);
  else
    print_text_report(o, m, inv, paths);
  return inv.ok() ? 0 : 1;
}

} // namespace

void add_loadtest_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<loadtest_opts>();
  auto& lo = o->lo;
  auto load = app.add_subcommand("loadtest", "simulated-worker load test with invariant checks");
  add_common(load, *o);
  load->add_option("--tasks", lo.tasks, "number of tasks")->capture_default_str();
  load->add_option("--shape", o->shape, "fanout, chain, diamond or random")->capture_default_str();
  load->add_option("--concurrency", lo.concurrency, "parallel sim workers")->capture_default_str();
  load->add_option("--fail-rate", lo.fail_rate, "share of attempts that fail")->capture_default_str();
  load->add_option("--hang-rate", lo.hang_rate, "share of attempts that hang until the attempt timeout")->capture_default_str();
  load->add_option("--crash-rate", lo.crash_rate, "share of attempts whose worker crashes")->capture_default_str();
  load->add_option("--latency-ms", lo.latency_ms, "mean simulated task latency")->capture_default_str();
  load->add_option("--seed", lo.seed, "seed of the simulation")->capture_default_str();
  load->add_option("--fsync", o->fsync, "none, batch or always")->capture_default_str();
  load->add_option("--baseline-messages", o->baseline_msgs, "messages for the raw CAF baseline (0: skip)")->capture_default_str();
  load->add_flag("--keep", o->keep, "keep the run's state directory");
  load->add_option("--retry-attempts", lo.retry_attempts,
                   "attempts per task (> 1 turns retries on)")
    ->capture_default_str();
  load->add_option("--backoff-ms", lo.backoff_ms, "first retry delay")
    ->capture_default_str();
  auto& lobs = o->obs;
  load->add_option("--metrics", o->metrics_mode, "metric sink on or off")
    ->check(CLI::IsMember({"on", "off"}))
    ->capture_default_str();
  load->add_flag("--metrics-jsonl", lobs.jsonl,
                 "write JSONL metric snapshots under .crew/state/metrics");
  load->add_option("--otlp-endpoint", lobs.otlp_endpoint,
                   "push OTLP/HTTP JSON metrics to this URL");
  load->add_option("--export-interval-ms", lobs.interval_ms,
                   "JSONL and OTLP export interval")
    ->capture_default_str();
  commands.add(load, [o] {
    o->obs.enabled = o->metrics_mode == "on";
    return cmd_loadtest(*o);
  });
}

} // namespace crew::cli
