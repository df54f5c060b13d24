#include "serve.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <memory>
#include <optional>
#include <regex>
#include <thread>
#include <unistd.h>
#include <unordered_map>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "crew/crew.hpp"
#include "messages/errors.hpp"
#include "observability/prometheus.hpp"
#include "observability/snapshot_json.hpp"
#include "runtime/operations/diagnostics.hpp"
#include "runtime/supervision/event_metrics.hpp"
#include "runtime/workers/process.hpp"
#include "store/atomic_file.hpp"
#include "store/clock.hpp"
#include "store/paths.hpp"
#include "store/snapshot.hpp"

#include "reliability.hpp"

namespace crew::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::atomic<bool> stop_requested{false};

void on_stop_signal(int) {
  stop_requested = true;
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]"
         || host.rfind("127.", 0) == 0;
}

fs::path serve_file(const fs::path& crew_root) {
  return crew_root / "state" / "serve.json";
}

/// Parses a non-negative decimal integer (the whole string).
bool parse_u64(const std::string& s, uint64_t& out) {
  if (s.empty())
    return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

/// Follows the persisted logs of every run and feeds their metric digests
/// to the node, so `/metrics` covers runs executed by any process.
class log_tailer {
public:
  log_tailer(fs::path crew_root, runtime& rt)
    : root_(std::move(crew_root)), rt_(rt) {
  }

  void tick() {
    for (auto& id : list_run_ids(root_)) {
      try {
        tail(id);
      } catch (const std::exception& e) {
        auto& t = runs_[id];
        if (!t.warned) {
          t.warned = true;
          std::cerr << "crew serve: cannot follow run " << id << ": " << e.what()
                    << "\n";
        }
      }
    }
  }

private:
  struct tailed {
    bool registered = false;
    bool warned = false;
    std::string team;
    std::shared_ptr<const std::vector<planned_task>> plan;
    std::unordered_map<std::string, uint32_t> index;
    uint64_t last_seq = 0;
    uintmax_t last_size = 0;
  };

  void tail(const std::string& id) {
    auto paths = make_run_paths(root_, id);
    std::error_code ec;
    auto size = fs::file_size(paths.events(), ec);
    if (ec)
      return; // not created yet
    auto& t = runs_[id];
    if (t.registered && size == t.last_size)
      return;
    if (!t.registered) {
      // The run may still be being created: retry on the next tick.
      if (!fs::exists(paths.manifest(), ec) || !fs::exists(paths.plan(), ec))
        return;
      auto m = parse_manifest(read_file(paths.manifest()), paths.manifest().string());
      auto plan = std::make_shared<std::vector<planned_task>>(
        parse_plan(read_file(paths.plan()), paths.plan().string()));
      t.team = m.team;
      t.plan = plan;
      for (uint32_t i = 0; i < plan->size(); ++i)
        t.index.emplace((*plan)[i].id, i);
    }
    std::vector<event_note> notes;
    auto lookup = [&](std::string_view tid) {
      auto i = t.index.find(std::string{tid});
      return i == t.index.end() ? UINT32_MAX : i->second;
    };
    read_options ro;
    ro.since_seq = t.last_seq;
    uint64_t max_seq = t.last_seq;
    for_each_event(
      paths.events(),
      [&](const event_view& ev) {
        if (ev.seq <= t.last_seq)
          return;
        max_seq = std::max(max_seq, ev.seq);
        event_note n;
        if (event_metrics::note_of(ev, lookup, n))
          notes.push_back(n);
      },
      ro);
    t.last_seq = max_seq;
    t.last_size = size;
    if (!t.registered) {
      rt_.ingest(id, t.team, t.plan, std::move(notes));
      t.registered = true;
    } else if (!notes.empty()) {
      rt_.ingest(id, t.team, nullptr, std::move(notes));
    }
  }

  fs::path root_;
  runtime& rt_;
  std::unordered_map<std::string, tailed> runs_;
};

/// Run status from the log, cached by the log's size and mtime.
class status_cache {
public:
  run_status get(const fs::path& events) {
    std::error_code ec;
    auto size = fs::file_size(events, ec);
    if (ec)
      return run_status::queued;
    auto mtime = fs::last_write_time(events, ec);
    {
      std::lock_guard guard{mtx_};
      auto i = entries_.find(events.string());
      if (i != entries_.end() && i->second.size == size && i->second.mtime == mtime)
        return i->second.status;
    }
    auto st = run_status_from_log(events);
    std::lock_guard guard{mtx_};
    entries_[events.string()] = entry{size, mtime, st};
    return st;
  }

private:
  struct entry {
    uintmax_t size;
    fs::file_time_type mtime;
    run_status status;
  };
  std::mutex mtx_;
  std::unordered_map<std::string, entry> entries_;
};

json runs_json(const fs::path& root, status_cache& cache, size_t limit) {
  std::vector<json> runs;
  for (auto& id : list_run_ids(root)) {
    try {
      auto p = make_run_paths(root, id);
      auto m = parse_manifest(read_file(p.manifest()), p.manifest().string());
      runs.push_back({{"runId", m.run_id},
                      {"status", to_string(cache.get(p.events()))},
                      {"team", m.team},
                      {"workflow", m.workflow},
                      {"goal", m.goal},
                      {"createdAt", m.created_at},
                      {"updatedAt", m.updated_at}});
    } catch (const std::exception&) {
      // a run without a readable manifest or log is not listed
    }
  }
  std::sort(runs.begin(), runs.end(), [](const json& a, const json& b) {
    auto ca = a["createdAt"].get<std::string>(), cb = b["createdAt"].get<std::string>();
    if (ca != cb)
      return ca > cb;
    return a["runId"].get<std::string>() > b["runId"].get<std::string>();
  });
  if (runs.size() > limit)
    runs.resize(limit);
  return json(runs);
}

/// Maps a failed run lookup to its HTTP answer.
void reply_run_error(httplib::Response& res, const std::string& id,
                     const input_error& e) {
  if (e.code() == errc::not_found)
    reply(res, 404, {{"error", fmt::format("unknown run id '{}'", id)}});
  else if (e.code() == errc::invalid_input)
    reply(res, 400, {{"error", e.what()}});
  else
    reply(res, 500, {{"error", e.what()}});
}

bool known_path(const std::string& path) {
  static const std::regex known{
    R"(^/(metrics|healthz|api/metrics|api/runs|api/runs/.+)$)"};
  return std::regex_match(path, known);
}

/// Where the node listens and who may ask it.
struct listen_settings {
  std::string host;
  int port = 0;
  std::string token;
  bool loopback = true;
};

/// The options of `crew serve`; an empty host, a negative port and an empty
/// token fall back to the config keys `serve.host`, `serve.port`,
/// `serve.token`.
struct serve_options : common_opts {
  std::string host;
  int port = -1;
  std::string token;
};

listen_settings listen_settings_for(const project_context& ctx,
                                    const serve_options& o) {
  listen_settings s;
  s.host = o.host.empty() ? ctx.config.serve.host : o.host;
  s.port = o.port >= 0 ? o.port : ctx.config.serve.port;
  if (s.port > 65535)
    throw input_error(fmt::format("--port {}: must be 0..65535", s.port));
  s.token = o.token.empty() ? ctx.config.serve.token.value_or("") : o.token;
  s.loopback = is_loopback(s.host);
  if (!s.loopback && s.token.empty())
    throw input_error(fmt::format(
      "--host {}: a non-loopback address requires a token (--token or serve.token)",
      s.host));
  return s;
}

/// One serve per project, named by serve.json: true, after saying so, when
/// that names another live serve.
bool another_serve_running(const fs::path& info_path) {
  try {
    std::error_code ec;
    if (fs::exists(info_path, ec)) {
      auto info = json::parse(read_file(info_path));
      int pid = info.value("pid", 0);
      if (pid > 0 && pid != ::getpid() && process_alive(pid)
          && process_start_time(pid) == info.value("startTime", uint64_t{0})) {
        std::cerr << "crew: serve is already running for this project (pid " << pid
                  << ", port " << info.value("port", 0) << ")\n";
        return true;
      }
    }
  } catch (const std::exception&) {
    // an unreadable serve.json is stale; the starting serve replaces it
  }
  return false;
}

void install_stop_handlers() {
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr); // SIGPIPE: ignored by main for every command
}

/// True when the request may read the API; else answers 401.
bool authorized(const listen_settings& s, const httplib::Request& req,
                httplib::Response& res) {
  if (s.loopback)
    return true;
  if (req.get_header_value("Authorization") == "Bearer " + s.token)
    return true;
  res.set_header("WWW-Authenticate", "Bearer");
  reply(res, 401, {{"error", "missing or wrong token (Authorization: Bearer …)"}});
  return false;
}

/// The node's metric families, only those matching the request's filter.
std::vector<metric_family> filtered_metrics(runtime& rt, const httplib::Request& req) {
  auto families = rt.metrics();
  if (req.has_param("filter") && !req.get_param_value("filter").empty())
    families = filter_metrics(std::move(families), req.get_param_value("filter"));
  return families;
}

/// /healthz, /metrics and /api/metrics: the node itself.
void add_node_routes(httplib::Server& svr, const listen_settings& s, runtime& rt,
                     std::chrono::steady_clock::time_point started) {
  svr.Get("/healthz", [started](const httplib::Request&, httplib::Response& res) {
    auto up = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - started)
                .count();
    reply(res, 200, {{"status", "ok"}, {"pid", ::getpid()}, {"uptimeMs", up}});
  });
  svr.Get("/metrics", [s, &rt](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(s, req, res))
      return;
    res.set_content(prometheus_text(filtered_metrics(rt, req)), prometheus_content_type);
  });
  svr.Get("/api/metrics", [s, &rt](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(s, req, res))
      return;
    reply(res, 200, metrics_json(filtered_metrics(rt, req)));
  });
}

/// /api/runs, /api/runs/{id}/events and /api/runs/{id}: the runs of the
/// state root `root`.
void add_run_routes(httplib::Server& svr, const listen_settings& s,
                    const fs::path& root, status_cache& statuses) {
  svr.Get("/api/runs", [s, root, &statuses](const httplib::Request& req,
                                            httplib::Response& res) {
    if (!authorized(s, req, res))
      return;
    uint64_t limit = 100;
    if (req.has_param("limit")
        && (!parse_u64(req.get_param_value("limit"), limit) || limit == 0
            || limit > 10000)) {
      reply(res, 400, {{"error", fmt::format("limit: expected an integer 1..10000, "
                                             "got '{}'",
                                             req.get_param_value("limit"))}});
      return;
    }
    reply(res, 200, runs_json(root, statuses, limit));
  });
  svr.Get(R"(/api/runs/(.+)/events)", [s, root](const httplib::Request& req,
                                                httplib::Response& res) {
    if (!authorized(s, req, res))
      return;
    std::string id = req.matches[1];
    uint64_t since = 0, limit = 1000;
    if (req.has_param("since") && !parse_u64(req.get_param_value("since"), since)) {
      reply(res, 400, {{"error", fmt::format("since: expected a non-negative "
                                             "integer, got '{}'",
                                             req.get_param_value("since"))}});
      return;
    }
    if (req.has_param("limit")
        && (!parse_u64(req.get_param_value("limit"), limit) || limit > 10000)) {
      reply(res, 400, {{"error", fmt::format("limit: expected an integer 0..10000, "
                                             "got '{}'",
                                             req.get_param_value("limit"))}});
      return;
    }
    try {
      require_valid_run_id(id);
      auto paths = make_run_paths(root, id);
      std::error_code ec;
      if (!fs::is_directory(paths.state_dir, ec))
        throw input_error(errc::not_found, "unknown run id");
      reply(res, 200, events_cursor(paths.events(), since, limit));
    } catch (const input_error& e) {
      reply_run_error(res, id, e);
    }
  });
  svr.Get(R"(/api/runs/(.+))", [s, root](const httplib::Request& req,
                                         httplib::Response& res) {
    if (!authorized(s, req, res))
      return;
    std::string id = req.matches[1];
    try {
      reply(res, 200, run_status_json(load_run(root, id)));
    } catch (const input_error& e) {
      reply_run_error(res, id, e);
    }
  });
}

/// What no route above answers: 404 for an unknown path, 405 for another
/// method on a known one, 500 for an exception.
void add_fallback_routes(httplib::Server& svr) {
  svr.Get(R"(.*)", [](const httplib::Request& req, httplib::Response& res) {
    reply(res, 404, {{"error", "not found"}, {"path", req.path}});
  });
  auto other_method = [](const httplib::Request& req, httplib::Response& res) {
    if (known_path(req.path)) {
      res.set_header("Allow", "GET, HEAD");
      reply(res, 405, {{"error", "method not allowed"},
                       {"method", req.method},
                       {"path", req.path}});
    } else {
      reply(res, 404, {{"error", "not found"}, {"path", req.path}});
    }
  };
  svr.Post(R"(.*)", other_method);
  svr.Put(R"(.*)", other_method);
  svr.Patch(R"(.*)", other_method);
  svr.Delete(R"(.*)", other_method);
  svr.set_exception_handler(
    [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        if (ep)
          std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      reply(res, 500, {{"error", what}});
    });
}

/// Binds `svr` to the host and port (port 0: any free one); returns the port.
int bind_server(httplib::Server& svr, const listen_settings& s) {
  int bound = s.port;
  if (s.port == 0) {
    bound = svr.bind_to_any_port(s.host);
    if (bound <= 0)
      throw io_error(fmt::format("cannot listen on {} (any port)", s.host));
  } else if (!svr.bind_to_port(s.host, s.port)) {
    throw io_error(fmt::format("cannot listen on {}:{} ({})", s.host, s.port,
                               std::strerror(errno)));
  }
  return bound;
}

/// Names this process, `pid`, as the project's serve in serve.json.
void write_serve_file(const fs::path& info_path, pid_t pid, const std::string& host,
                      int bound) {
  json info{{"pid", pid},
            {"startTime", process_start_time(pid)},
            {"host", host},
            {"port", bound},
            {"startedAt", iso_now()}};
  write_file_atomic(info_path, info.dump(2) + "\n");
}

/// Removes serve.json only while it still names `pid`.
void remove_serve_file(const fs::path& info_path, pid_t pid) {
  std::error_code ec;
  try {
    auto now = json::parse(read_file(info_path));
    if (now.value("pid", 0) == pid)
      fs::remove(info_path, ec);
  } catch (const std::exception&) {
  }
}

/// Follows the runs' logs once a second until SIGINT or SIGTERM.
void tail_until_stopped(log_tailer& tailer) {
  auto next_tick = std::chrono::steady_clock::now() + 1s;
  while (!stop_requested) {
    std::this_thread::sleep_for(50ms);
    if (std::chrono::steady_clock::now() >= next_tick) {
      tailer.tick();
      next_tick = std::chrono::steady_clock::now() + 1s;
    }
  }
}

int cmd_serve(const serve_options& o) {
  auto ctx = load_project(o.cwd, {});
  auto node = node_options_for(ctx);
  auto settings = listen_settings_for(ctx, o);
  auto root = ctx.crew_root;
  auto info_path = serve_file(root);
  if (another_serve_running(info_path))
    return 1;
  install_stop_handlers();

  auto started = std::chrono::steady_clock::now();
  runtime rt{node};
  log_tailer tailer{root, rt};
  tailer.tick();
  status_cache statuses;

  httplib::Server svr;
  svr.set_keep_alive_timeout(2);
  add_node_routes(svr, settings, rt, started);
  add_run_routes(svr, settings, root, statuses);
  add_fallback_routes(svr);
  int bound = bind_server(svr, settings);

  auto pid = ::getpid();
  write_serve_file(info_path, pid, settings.host, bound);
  std::thread http{[&] { svr.listen_after_bind(); }};
  if (o.json)
    std::cout << json{{"host", settings.host}, {"port", bound}, {"pid", pid}}.dump()
              << std::endl;
  else
    std::cout << "listening on http://" << settings.host << ":" << bound << std::endl;

  tail_until_stopped(tailer);
  svr.stop();
  http.join();
  remove_serve_file(info_path, pid);
  if (!o.json)
    std::cout << "stopped" << std::endl;
  return 0;
}

} // namespace

void add_serve_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<serve_options>();
  auto serve = app.add_subcommand("serve", "long-lived node: HTTP API and Prometheus /metrics");
  add_common(serve, *o);
  serve->add_option("--host", o->host, "listen address (default: serve.host, 127.0.0.1)");
  serve->add_option("--port", o->port, "listen port, 0 picks a free one (default: serve.port, 7878)");
  serve->add_option("--token", o->token, "API token (required for a non-loopback host)");
  commands.add(serve, [o] {
    check_interrupted(load_project(o->cwd, {}));
    return cmd_serve(*o);
  });
}

std::optional<live_serve> find_live_serve(const fs::path& root) {
  try {
    auto info = json::parse(read_file(serve_file(root)));
    int pid = info.value("pid", 0);
    if (pid <= 0 || !process_alive(pid)
        || process_start_time(pid) != info.value("startTime", uint64_t{0}))
      return std::nullopt;
    live_serve out;
    out.host = info.value("host", "127.0.0.1");
    out.port = info.value("port", 0);
    if (out.host == "0.0.0.0" || out.host.empty())
      out.host = "127.0.0.1";
    else if (out.host == "::")
      out.host = "::1";
    if (out.port <= 0)
      return std::nullopt;
    return out;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

} // namespace crew::cli
