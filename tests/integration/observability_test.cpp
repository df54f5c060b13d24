// Observability surfaces end to end: `crew serve` (HTTP API, /metrics scraped
// by a real Prometheus), `crew metrics`, `crew diag`, and the OTLP exporter
// against a test collector.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <httplib.h>

#include "support.hpp"
#include "otlp_receiver.hpp"

using namespace crew::it;

namespace {

/// A free TCP port on 127.0.0.1 (bound to port 0, then released).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct http_answer {
  int status = 0;
  std::string body;
  std::string content_type;
};

http_answer http_get(int port, const std::string& path) {
  httplib::Client cli{"127.0.0.1", port};
  cli.set_connection_timeout(2, 0);
  cli.set_read_timeout(10, 0);
  auto res = cli.Get(path.c_str());
  http_answer out;
  if (res) {
    out.status = res->status;
    out.body = res->body;
    out.content_type = res->get_header_value("Content-Type");
  }
  return out;
}

http_answer http_post(int port, const std::string& path) {
  httplib::Client cli{"127.0.0.1", port};
  cli.set_connection_timeout(2, 0);
  auto res = cli.Post(path.c_str(), "{}", "application/json");
  http_answer out;
  if (res) {
    out.status = res->status;
    out.body = res->body;
  }
  return out;
}

/// Runs `promtool check metrics` on `text`; FAILs when promtool is missing.
void check_with_promtool(const project& p, const std::string& text) {
  const char* promtool = "/usr/bin/promtool";
  if (::access(promtool, X_OK) != 0)
    FAIL("promtool is missing: install the Debian package `prometheus` "
         "(scripts/deps does)");
  crew::process_spec spec;
  spec.command_line = std::string{promtool} + " check metrics";
  spec.stdin_data = text;
  spec.stdout_path = (p.base / "promtool.out").string();
  spec.stderr_path = (p.base / "promtool.err").string();
  spec.timeout_ms = 20000;
  auto outcome = crew::run_process(spec);
  INFO("promtool stdout: " << read_text(p.base / "promtool.out"));
  INFO("promtool stderr: " << read_text(p.base / "promtool.err"));
  INFO("metrics:\n" << text);
  CHECK(outcome.success());
}

/// A background process of its own process group, killed on destruction.
struct bg_process {
  pid_t pid = -1;
  fs::path out_file, err_file;
  bool reaped = false;

  bg_process(const std::vector<std::string>& args, const fs::path& log_base) {
    out_file = log_base.string() + ".out";
    err_file = log_base.string() + ".err";
    pid = spawn_logged(args, nullptr, out_file, err_file);
  }

  ~bg_process() {
    if (!reaped && pid > 0) {
      ::kill(-pid, SIGKILL);
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
  }

  /// SIGTERM, then waits up to `timeout`; returns true if it exited.
  bool stop(std::chrono::milliseconds timeout) {
    if (reaped)
      return true;
    ::kill(pid, SIGTERM);
    return wait_until(
      [&] {
        int st = 0;
        if (::waitpid(pid, &st, WNOHANG) == pid)
          reaped = true;
        return reaped;
      },
      timeout);
  }
};

/// Runs a demo run to completion; returns its id.
std::string demo_run(const project& p) {
  auto r = p.crew({"run", "--team", "demo", "--goal", "x", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  return r.last_json()["runId"].get<std::string>();
}

/// `crew serve --port 0 --json` and its announced port.
struct serve_process {
  spawned_crew proc;
  int port = 0;

  explicit serve_process(const project& p, std::vector<std::string> extra = {})
    : proc(p, [&] {
        std::vector<std::string> args{"serve", "--port", "0", "--json"};
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
      }()) {
    json hello;
    bool up = wait_until(
      [&] {
        auto ls = lines_of(proc.out());
        if (ls.empty())
          return false;
        hello = json::parse(ls.front(), nullptr, false);
        return !hello.is_discarded();
      },
      15000ms);
    REQUIRE_MESSAGE(up, "crew serve did not announce its port; stderr: "
                          << proc.err());
    REQUIRE(hello.contains("port"));
    CHECK(hello["host"] == "127.0.0.1");
    CHECK(hello["pid"] == proc.pid);
    port = hello["port"].get<int>();
    REQUIRE(port > 0);
  }
};

double counter_value(const std::string& prom_text, const std::string& sample) {
  for (auto& line : lines_of(prom_text))
    if (line.rfind(sample + " ", 0) == 0)
      return std::stod(line.substr(sample.size() + 1));
  return -1;
}

} // namespace

TEST_CASE("serve: HTTP API over a finished run, promtool-valid /metrics, live "
          "tailing and a clean SIGTERM") {
  project p;
  auto id = demo_run(p);
  serve_process s{p};
  auto info_path = p.root / ".crew" / "state" / "serve.json";
  REQUIRE(fs::exists(info_path));
  auto info = json::parse(read_text(info_path));
  CHECK(info["pid"] == s.proc.pid);
  CHECK(info["port"] == s.port);
  CHECK(info["host"] == "127.0.0.1");
  CHECK(info["startTime"].get<uint64_t>() > 0);
  CHECK(info.contains("startedAt"));

  auto h = http_get(s.port, "/healthz");
  REQUIRE(h.status == 200);
  CHECK(h.content_type.find("application/json") == 0);
  auto hj = json::parse(h.body);
  CHECK(hj["status"] == "ok");
  CHECK(hj["pid"] == s.proc.pid);
  CHECK(hj["uptimeMs"].is_number());

  auto runs = http_get(s.port, "/api/runs");
  REQUIRE(runs.status == 200);
  auto rj = json::parse(runs.body);
  REQUIRE(rj.is_array());
  REQUIRE(rj.size() == 1);
  CHECK(rj[0]["runId"] == id);
  CHECK(rj[0]["status"] == "completed");
  CHECK(rj[0]["team"] == "demo");
  CHECK(rj[0]["goal"] == "x");
  for (auto* k : {"workflow", "createdAt", "updatedAt"})
    CHECK(rj[0].contains(k));

  auto one = http_get(s.port, "/api/runs/" + id);
  REQUIRE(one.status == 200);
  auto oj = json::parse(one.body);
  CHECK(oj["manifest"]["runId"] == id);
  CHECK(oj["manifest"]["status"] == "completed");
  CHECK(oj["tasks"].size() == 3);
  CHECK(oj == p.status(id)); // exactly `crew status --json`

  auto evs = p.events(id);
  auto cur = http_get(s.port, "/api/runs/" + id + "/events?since=1&limit=2");
  REQUIRE(cur.status == 200);
  auto cj = json::parse(cur.body);
  REQUIRE(cj["events"].size() == 2);
  CHECK(cj["events"][0]["metadata"]["seq"] == 2);
  CHECK(cj["events"][1]["metadata"]["seq"] == 3);
  CHECK(cj["events"][0]["type"] == evs[1]["type"]);
  CHECK(cj["nextSeq"] == 3);
  CHECK(cj["total"] == evs.size() - 1);
  auto all = json::parse(http_get(s.port, "/api/runs/" + id + "/events").body);
  CHECK(all["events"].size() == evs.size());
  CHECK(all["nextSeq"] == evs.size());
  auto past = json::parse(
    http_get(s.port, "/api/runs/" + id + "/events?since=100000").body);
  CHECK(past["events"].empty());
  CHECK(past["nextSeq"] == 100000);
  CHECK(past["total"] == 0);
  auto bad_since = http_get(s.port, "/api/runs/" + id + "/events?since=abc");
  CHECK(bad_since.status == 400);
  CHECK(bad_since.body.find("since") != std::string::npos);
  auto bad_limit = http_get(s.port, "/api/runs/" + id + "/events?limit=-1");
  CHECK(bad_limit.status == 400);
  CHECK(bad_limit.body.find("limit") != std::string::npos);
  CHECK(http_get(s.port, "/api/runs/" + id + "/events?limit=10001").status == 400);

  auto nf = http_get(s.port, "/nope");
  CHECK(nf.status == 404);
  CHECK(nf.content_type.find("application/json") == 0);
  CHECK(json::parse(nf.body) == json{{"error", "not found"}, {"path", "/nope"}});
  auto unknown = http_get(s.port, "/api/runs/team_nope");
  CHECK(unknown.status == 404);
  CHECK(json::parse(unknown.body) == json{{"error", "unknown run id 'team_nope'"}});
  CHECK(http_get(s.port, "/api/runs/team_nope/events").status == 404);
  auto dots = http_get(s.port, "/api/runs/..");
  CHECK(dots.status == 400);
  CHECK(json::parse(dots.body).contains("error"));
  CHECK(http_get(s.port, "/api/runs/..%2F..%2Fetc/events").status == 400);
  CHECK(http_post(s.port, "/api/runs").status == 405);
  CHECK(http_post(s.port, "/nope").status == 404);

  auto m = http_get(s.port, "/metrics");
  REQUIRE(m.status == 200);
  CHECK(m.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(m.body.find("crew_run_count_total{status=\"completed\"} 1\n")
        != std::string::npos);
  check_with_promtool(p, m.body);
  auto am = http_get(s.port, "/api/metrics?filter=crew.run.*");
  REQUIRE(am.status == 200);
  auto amj = json::parse(am.body);
  REQUIRE(!amj.empty());
  for (auto& f : amj)
    CHECK(f["name"].get<std::string>().rfind("crew.run.", 0) == 0);

  // `crew metrics` reads from the live serve.
  auto cm = p.crew({"metrics", "--format", "json", "--filter", "crew.run.count"});
  REQUIRE_MESSAGE(cm.code == 0, cm);
  auto cmj = cm.doc();
  REQUIRE(cmj.size() == 1);
  CHECK(cmj[0]["name"] == "crew.run.count");

  // A run executed by another process shows up within the tailing interval.
  demo_run(p);
  CHECK(wait_until(
    [&] {
      return counter_value(http_get(s.port, "/metrics").body,
                           "crew_run_count_total{status=\"completed\"}")
             == 2;
    },
    10000ms));
  CHECK(json::parse(http_get(s.port, "/api/runs").body).size() == 2);

  ::kill(s.proc.pid, SIGTERM);
  CHECK(s.proc.wait(10000ms) == 0);
  CHECK_FALSE(fs::exists(info_path));
}

TEST_CASE("serve: a real Prometheus scrapes crew_run_count_total") {
  if (::access("/usr/bin/prometheus", X_OK) != 0)
    FAIL("prometheus is missing: install the Debian package `prometheus` "
         "(scripts/deps does)");
  project p;
  demo_run(p);
  serve_process s{p};
  int prom_port = free_port();
  auto cfg = p.base / "prometheus.yml";
  write_text(cfg, "global:\n"
                  "  scrape_interval: 1s\n"
                  "  evaluation_interval: 1s\n"
                  "scrape_configs:\n"
                  "  - job_name: crew\n"
                  "    scrape_interval: 1s\n"
                  "    static_configs:\n"
                  "      - targets: ['127.0.0.1:"
                    + std::to_string(s.port) + "']\n");
  bg_process prom{{"/usr/bin/prometheus", "--config.file=" + cfg.string(),
                   "--storage.tsdb.path=" + (p.base / "data").string(),
                   "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
                  p.base / "prometheus"};
  std::string last;
  bool seen = wait_until(
    [&] {
      auto r = http_get(prom_port, "/api/v1/query?query=crew_run_count_total");
      if (r.status != 200)
        return false;
      last = r.body;
      auto j = json::parse(r.body, nullptr, false);
      if (j.is_discarded() || j.value("status", "") != "success")
        return false;
      for (auto& sample : j["data"]["result"])
        if (sample["metric"].value("status", "") == "completed"
            && sample["value"][1] == "1")
          return true;
      return false;
    },
    30000ms);
  INFO("last answer: " << last);
  INFO("prometheus stderr tail: " << [&] {
    auto e = read_text(prom.err_file);
    return e.size() > 3000 ? e.substr(e.size() - 3000) : e;
  }());
  CHECK(seen);
  CHECK(prom.stop(15000ms));
  ::kill(s.proc.pid, SIGTERM);
  CHECK(s.proc.wait(10000ms) == 0);
}

TEST_CASE("observability: the OTLP exporter pushes a valid body with the "
          "configured headers to a collector") {
  otlp_receiver rx;
  project p;
  p.write(".crew/config.json",
          json{{"otlp",
                {{"enabled", true},
                 {"endpoint", rx.endpoint()},
                 {"intervalMs", 5000},
                 {"headers", {{"x-crew-test", "1"}}}}}}
            .dump());
  auto r = p.crew({"run", "--team", "demo", "--goal", "x", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  CHECK(r.last_json()["status"] == "completed");
  std::vector<otlp_receiver::request> got;
  bool arrived = wait_until(
    [&] {
      got = rx.requests();
      return !got.empty();
    },
    5000ms);
  REQUIRE_MESSAGE(arrived, "no OTLP push; stderr: " << r.err);
  bool found = false;
  for (auto& req : got) {
    INFO("problems: " << json(req.problems).dump());
    CHECK(req.valid);
    CHECK(req.headers["x-crew-test"] == "1");
    CHECK(req.headers["content-type"].find("application/json") == 0);
    auto body = json::parse(req.body);
    auto& rm = body["resourceMetrics"][0];
    bool service = false;
    for (auto& a : rm["resource"]["attributes"])
      service = service
                || (a["key"] == "service.name" && a["value"]["stringValue"] == "crew");
    CHECK(service);
    for (auto& sm : rm["scopeMetrics"])
      for (auto& m : sm["metrics"])
        found = found || m["name"] == "crew.run.count";
  }
  CHECK(found);
}

TEST_CASE("observability: an unreachable OTLP collector neither fails the run "
          "nor floods stderr") {
  project p;
  int dead_port = free_port(); // nothing listens there
  p.write(".crew/config.json",
          json{{"otlp",
                {{"enabled", true},
                 {"endpoint",
                  "http://127.0.0.1:" + std::to_string(dead_port) + "/v1/metrics"},
                 {"intervalMs", 5000}}}}
            .dump());
  auto t0 = std::chrono::steady_clock::now();
  auto r = p.crew({"run", "--team", "demo", "--goal", "x", "--json"});
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                .count();
  REQUIRE_MESSAGE(r.code == 0, r);
  CHECK(r.last_json()["status"] == "completed");
  CHECK(secs < 20);
  size_t mentions = 0;
  for (auto& line : lines_of(r.err))
    mentions += line.find("OTLP") != std::string::npos ? 1 : 0;
  INFO("stderr: " << r.err);
  CHECK(mentions >= 1);
  CHECK(mentions <= 3);
}

TEST_CASE("observability: crew metrics without a serve derives from the logs") {
  project p;
  demo_run(p);
  auto prom = p.crew({"metrics", "--format", "prometheus"});
  REQUIRE_MESSAGE(prom.code == 0, prom);
  CHECK(prom.out.find("crew_run_count_total{status=\"completed\"} 1\n")
        != std::string::npos);
  check_with_promtool(p, prom.out);

  auto js = p.crew({"metrics", "--format", "json", "--filter", "crew.run.*"});
  REQUIRE_MESSAGE(js.code == 0, js);
  auto doc = js.doc();
  REQUIRE(doc.is_array());
  REQUIRE(!doc.empty());
  bool count = false;
  for (auto& f : doc) {
    auto name = f["name"].get<std::string>();
    CHECK_MESSAGE(name.rfind("crew.run.", 0) == 0, name);
    count = count || name == "crew.run.count";
  }
  CHECK(count);

  auto bad = p.crew({"metrics", "--format", "xml"});
  CHECK(bad.code == 2);
  CHECK(bad.err.find("--format") != std::string::npos);
  CHECK(bad.out.empty());

  // A stale serve.json (dead pid) is ignored.
  write_text(p.root / ".crew" / "state" / "serve.json",
             R"({"pid": 999999999, "startTime": 1, "host": "127.0.0.1", "port": 1})");
  auto stale = p.crew({"metrics"});
  REQUIRE_MESSAGE(stale.code == 0, stale);
  CHECK(stale.out.find("crew_run_count_total{status=\"completed\"} 1\n")
        != std::string::npos);
}

TEST_CASE("observability: crew diag writes a redacted schemaVersion 2 report") {
  project p;
  auto id = demo_run(p);
  // crew diag with a secret in its environment
  auto out_file = p.base / "diag.out", err_file = p.base / "diag.err";
  crew::process_spec spec;
  spec.command_line = "exec " + shell_quote(CREW_BINARY) + " diag " + shell_quote(id)
                      + " --json --cwd " + shell_quote(p.root.string());
  spec.env = p.env();
  spec.env.push_back("API_TOKEN=supersecret");
  spec.env.push_back("CREW_DIAG_PLAIN=visible");
  spec.stdout_path = out_file.string();
  spec.stderr_path = err_file.string();
  spec.timeout_ms = 30000;
  auto outcome = crew::run_process(spec);
  INFO("stderr: " << read_text(err_file));
  REQUIRE(outcome.success());
  auto printed = json::parse(read_text(out_file));
  fs::path file = printed["path"].get<std::string>();
  REQUIRE(fs::exists(file));
  CHECK(file.parent_path() == p.artifacts(id) / "diagnostic");
  CHECK(file.filename().string().rfind("diagnostic-", 0) == 0);
  CHECK(file.filename().string().find(':') == std::string::npos);
  auto text = read_text(file);
  CHECK(text.find("supersecret") == std::string::npos);
  CHECK(text.find("\n  \"") != std::string::npos); // pretty-printed
  auto d = json::parse(text);
  CHECK(d["schemaVersion"] == 2);
  CHECK(d["runId"] == id);
  auto stamp = d["exportedAt"].get<std::string>();
  std::replace(stamp.begin(), stamp.end(), ':', '-');
  std::replace(stamp.begin(), stamp.end(), '.', '-');
  CHECK(file.filename() == "diagnostic-" + stamp + ".json");
  CHECK(d["manifest"]["runId"] == id);
  CHECK(d["manifest"]["status"] == "completed");
  CHECK(d["tasks"].size() == 3);
  REQUIRE(d["recentEvents"].is_array());
  CHECK(!d["recentEvents"].empty());
  CHECK(d["recentEvents"].size() == p.events(id).size());
  CHECK(d["recentEvents"].back()["type"] == "run.completed");
  auto& hb = d["heartbeat"];
  CHECK(hb["runId"] == id);
  CHECK(hb["totalTasks"] == 0); // all tasks finished
  for (auto* k : {"healthy", "stale", "dead", "missing", "worstStaleMs"})
    CHECK(hb.contains(k));
  for (auto* k : {"healthy", "warn", "stale", "dead"})
    CHECK(hb["gradient"].contains(k));
  CHECK(d["agents"] == json::array());
  CHECK(d["envRedacted"]["API_TOKEN"] == "***");
  CHECK(d["envRedacted"]["CREW_DIAG_PLAIN"] == "visible");
  bool tokens_family = false;
  bool run_count = false;
  for (auto& f : d["metricsSnapshot"]) {
    tokens_family = tokens_family || f["name"] == "crew.task.tokens_total";
    if (f["name"] == "crew.run.count")
      for (auto& v : f["values"])
        run_count = run_count
                    || (v["labels"]["status"] == "completed" && v["value"] == 1);
  }
  CHECK(tokens_family);
  CHECK(run_count);
}

TEST_CASE("observability: bad input to serve, metrics and diag exits 2") {
  project p;
  auto open = p.crew({"serve", "--host", "0.0.0.0"});
  CHECK(open.code == 2);
  CHECK(open.err.find("token") != std::string::npos);
  CHECK(open.err.find("0.0.0.0") != std::string::npos);
  CHECK_FALSE(fs::exists(p.root / ".crew" / "state" / "serve.json"));
  auto dots = p.crew({"diag", "../x"});
  CHECK(dots.code == 2);
  CHECK(dots.err.find("../x") != std::string::npos);
  auto unknown = p.crew({"diag", "team_missing"});
  CHECK(unknown.code == 2);
  CHECK(unknown.err.find("team_missing") != std::string::npos);
}
