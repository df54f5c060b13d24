#include "actors/metric_sink.hpp"

#include "actors/undeliverable.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <httplib.h>

#include "observability/otlp.hpp"
#include "observability/redact.hpp"
#include "observability/snapshot_json.hpp"
#include "store/clock.hpp"
#include "store/correlation.hpp"

#include <fmt/format.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace crew {

namespace {

using self_ptr = metric_sink_impl::stateful_pointer<metric_sink_state>;
using namespace std::chrono;

int64_t steady_ns() {
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch())
    .count();
}

uint64_t unix_ns() {
  return static_cast<uint64_t>(
    duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count());
}

// -- the OTLP exporter ----------------------------------------------------------

using otlp_exporter_impl = otlp_exporter_actor::extend<caf::reacts_to<export_atom>>;

struct otlp_exporter_state {
  static inline const char* name = "crew.otlp_exporter";
  otlp_exporter_state() = default;
  std::string endpoint;
  std::map<std::string, std::string> headers;
  metric_sink_actor sink;
  std::string pending;       ///< the newest body not yet delivered
  bool retry_armed = false;
  uint32_t failures = 0;     ///< consecutive failures (backoff exponent)
  int64_t last_log_ns = 0;
};

/// Splits `http://host:port/path` into the client base and the path.
bool split_endpoint(const std::string& url, std::string& base, std::string& path) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos)
    return false;
  auto slash = url.find('/', scheme + 3);
  base = slash == std::string::npos ? url : url.substr(0, slash);
  path = slash == std::string::npos ? "/v1/metrics" : url.substr(slash);
  return true;
}

void push(otlp_exporter_impl::stateful_pointer<otlp_exporter_state> self) {
  auto& st = self->state;
  if (st.pending.empty())
    return;
  std::string base, path, error;
  bool ok = false;
  if (!split_endpoint(st.endpoint, base, path)) {
    error = "invalid endpoint " + st.endpoint;
  } else {
    httplib::Client cli{base};
    cli.set_connection_timeout(2, 0);
    cli.set_read_timeout(10, 0);
    cli.set_write_timeout(10, 0);
    httplib::Headers hs;
    for (auto& [k, v] : st.headers)
      hs.emplace(k, v);
    auto res = cli.Post(path.c_str(), hs, st.pending, "application/json");
    if (!res)
      error = httplib::to_string(res.error());
    else if (res->status < 200 || res->status >= 300)
      error = "HTTP " + std::to_string(res->status);
    else
      ok = true;
  }
  self->send(st.sink, export_atom_v, ok);
  if (ok) {
    st.pending.clear();
    st.failures = 0;
    return;
  }
  ++st.failures;
  auto now = steady_ns();
  if (now - st.last_log_ns > 60'000'000'000) { // at most one line a minute
    st.last_log_ns = now;
    std::cerr << "crew: OTLP export to " << st.endpoint << " failed (" << error
              << "); retrying with backoff\n";
  }
  if (!st.retry_armed) {
    st.retry_armed = true;
    auto delay = milliseconds{std::min<int64_t>(60'000, 500LL << std::min(st.failures, 7u))};
    self->delayed_send(self, delay, export_atom_v);
  }
}

otlp_exporter_impl::behavior_type
otlp_exporter(otlp_exporter_impl::stateful_pointer<otlp_exporter_state> self,
              std::string endpoint, std::map<std::string, std::string> headers,
              metric_sink_actor sink) {
  self->state.endpoint = std::move(endpoint);
  self->state.headers = std::move(headers);
  self->state.sink = std::move(sink);
  return {
    [=](export_atom, std::string& body) {
      self->state.pending = std::move(body);
      if (!self->state.retry_armed)
        push(self);
    },
    [=](export_atom) {
      self->state.retry_armed = false;
      push(self);
    },
  };
}

// -- the sink -------------------------------------------------------------------

/// Correlation in OTLP: data points of a run carry its trace id (the same
/// traceId as its events), so a backend can join metrics and traces.
std::vector<metric_family> with_trace_ids(std::vector<metric_family> families) {
  for (auto& f : families)
    for (auto& s : f.samples)
      for (size_t i = 0, n = s.labels.size(); i < n; ++i)
        if (s.labels[i].first == "runId") {
          s.labels.emplace_back("traceId",
                                correlation::for_run(s.labels[i].second).trace_hex());
          break;
        }
  return families;
}

/// The OTLP resource of this node: service.name=crew plus the process.
otlp_resource resource() {
  otlp_resource res;
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  res.attributes.emplace_back("service.instance.id",
                              fmt::format("{}:{}", host, ::getpid()));
  res.attributes.emplace_back("host.name", host);
  return res;
}

void export_now(self_ptr self, bool force) {
  auto& st = self->state;
  auto now = steady_ns();
  auto& o = st.options;
  auto jsonl = !o.metrics_dir.empty()
               && (force
                   || now - st.last_jsonl_ns
                        >= int64_t(o.jsonl_interval_ms) * 1'000'000);
  auto otlp = o.otlp && st.exporter
              && (force
                  || now - st.last_otlp_ns
                       >= int64_t(o.otlp_interval_ms) * 1'000'000);
  // A snapshot copies every series: take none when nothing is exported.
  if (!jsonl && !otlp)
    return;
  auto families = st.registry->collect();
  if (jsonl) {
    st.last_jsonl_ns = now;
    try {
      write_metrics_jsonl(o.metrics_dir, o.retention_days, families);
    } catch (const std::exception& e) {
      std::cerr << "crew: metric sink: " << e.what() << "\n";
    }
  }
  if (otlp) {
    st.last_otlp_ns = now;
    self->send(st.exporter, export_atom_v,
               otlp_metrics_json(with_trace_ids(families), resource(),
                                 st.start_unix_ns, unix_ns()));
  }
}

} // namespace

void write_metrics_jsonl(const std::string& dir, uint32_t retention_days,
                         const std::vector<metric_family>& families) {
  fs::create_directories(dir);
  auto cutoff = fs::file_time_type::clock::now() - hours{24} * retention_days;
  for (auto& entry : fs::directory_iterator(dir)) {
    std::error_code ec;
    if (entry.path().extension() == ".jsonl"
        && entry.last_write_time(ec) < cutoff && !ec)
      fs::remove(entry.path(), ec);
  }
  auto now = iso_now();
  nlohmann::json line{{"exportedAt", now},
                      {"snapshots", redact(metrics_json(families))}};
  std::ofstream out{fs::path{dir} / (now.substr(0, 10) + ".jsonl"), std::ios::app};
  out << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
      << '\n';
  if (!out)
    throw std::runtime_error("cannot write metric snapshot in " + dir);
}

metric_sink_impl::behavior_type metric_sink(self_ptr self,
                                            metric_sink_options options,
                                            std::string deadletter_path) {
  self->set_default_handler(undeliverable_handler(deadletter_path));
  auto& st = self->state;
  st.options = std::move(options);
  st.registry = std::make_unique<metric_registry>();
  st.events = std::make_unique<event_metrics>(*st.registry);
  auto& exports = st.registry->counter_family(
    "crew.otlp.export_total", "OTLP pushes by outcome.");
  st.otlp_ok = &exports.add({{"outcome", "ok"}});
  st.otlp_failed = &exports.add({{"outcome", "failed"}});
  st.start_unix_ns = unix_ns();
  st.last_jsonl_ns = st.last_otlp_ns = steady_ns();
  if (st.options.otlp && !st.options.otlp_endpoint.empty())
    st.exporter = self->spawn<caf::detached + caf::linked>(
      otlp_exporter, st.options.otlp_endpoint, st.options.otlp_headers,
      caf::actor_cast<metric_sink_actor>(self));
  auto tick = milliseconds{std::min(st.options.jsonl_interval_ms,
                                    st.options.otlp ? st.options.otlp_interval_ms
                                                    : st.options.jsonl_interval_ms)};
  if (tick.count() > 0)
    self->delayed_send(self, tick, export_atom_v);
  return {
    [=](track_atom, std::string& run, std::string& team, plan_ptr& plan) {
      self->state.events->track(std::move(run), std::move(team), std::move(plan));
    },
    [=](untrack_atom, const std::string& run) {
      self->state.events->untrack(run);
      // Short CLI runs leave their metrics on disk too.
      export_now(self, true);
    },
    [=](notes_atom, const std::string& run, const std::vector<event_note>& notes) {
      self->state.events->apply(run, notes);
    },
    [=](stats_atom, const commit_stats& x) { self->state.events->apply(x); },
    [=](stats_atom, const scheduler_stats& x) { self->state.events->apply(x); },
    [=](export_atom, bool ok) {
      (ok ? self->state.otlp_ok : self->state.otlp_failed)->inc();
    },
    [=](caf::get_atom) -> metrics_snapshot {
      return std::make_shared<const std::vector<metric_family>>(
        self->state.registry->collect());
    },
    [=](export_atom) {
      export_now(self, false);
      self->delayed_send(self, tick, export_atom_v);
    },
  };
}

} // namespace crew
