#include "observability.hpp"

#include <iostream>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "crew/crew.hpp"
#include "messages/errors.hpp"
#include "observability/prometheus.hpp"
#include "observability/snapshot_json.hpp"
#include "runtime/operations/diagnostics.hpp"
#include "store/paths.hpp"

#include "serve.hpp"

extern char** environ;

namespace crew::cli {

namespace {

using json = nlohmann::json;

// -- crew metrics ---------------------------------------------------------------

/// Options of `crew metrics`.
struct metrics_options : common_opts {
  std::string format = "prometheus";
  std::string filter;
};

/// Prints the metric snapshot of the live `crew serve` of the project (from
/// `<crew root>/state/serve.json`), or else the one derived from the logs.
int cmd_metrics(const metrics_options& o) {
  if (o.format != "prometheus" && o.format != "json")
    throw input_error(fmt::format("--format: unknown format '{}' (prometheus, json)",
                                  o.format));
  auto root = crew_root_for(o.cwd);
  if (auto live = find_live_serve(root)) {
    std::string token;
    try {
      auto ctx = load_project(o.cwd, {});
      token = ctx.config.serve.token.value_or("");
    } catch (const std::exception&) {
    }
    httplib::Client cli{live->host, live->port};
    cli.set_connection_timeout(2, 0);
    cli.set_read_timeout(10, 0);
    httplib::Headers hs;
    if (!token.empty())
      hs.emplace("Authorization", "Bearer " + token);
    std::string path = o.format == "prometheus" ? "/metrics" : "/api/metrics";
    if (!o.filter.empty())
      path += "?filter=" + httplib::detail::encode_query_param(o.filter);
    auto res = cli.Get(path.c_str(), hs);
    if (res && res->status == 200) {
      if (o.format == "prometheus")
        std::cout << res->body << std::flush;
      else
        std::cout << json::parse(res->body).dump(2) << std::endl;
      return 0;
    }
    std::cerr << "crew: metrics: the live serve at " << live->host << ":"
              << live->port << " did not answer ("
              << (res ? "HTTP " + std::to_string(res->status)
                      : httplib::to_string(res.error()))
              << "); deriving from the logs\n";
  }
  auto families = metrics_from_logs(root);
  if (!o.filter.empty())
    families = filter_metrics(std::move(families), o.filter);
  if (o.format == "prometheus")
    std::cout << prometheus_text(families) << std::flush;
  else
    std::cout << metrics_json(families).dump(2, ' ', false,
                                             json::error_handler_t::replace)
              << std::endl;
  return 0;
}

// -- crew diag ------------------------------------------------------------------

/// Writes the diagnostic report of `run_id` (runtime/operations/diagnostics.hpp) and
/// prints its path (`{"path": …}` with `json`). Throws input_error for an
/// invalid or unknown run id.
int cmd_diag(const std::string& cwd, const std::string& run_id, bool json) {
  require_valid_run_id(run_id); // before touching anything
  auto root = crew_root_for(cwd);
  auto path = write_diagnostic(root, run_id, environ);
  if (json)
    std::cout << nlohmann::json{{"path", path.string()}}.dump() << std::endl;
  else
    std::cout << path.string() << std::endl;
  return 0;
}

} // namespace

void add_metrics_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<metrics_options>();
  auto metrics = app.add_subcommand("metrics", "metric snapshot (from the live serve, else the logs)");
  add_common(metrics, *o);
  metrics->add_option("--format", o->format, "prometheus or json")->capture_default_str();
  metrics->add_option("--filter", o->filter, "only families whose name matches GLOB");
  commands.add(metrics, [o] { return cmd_metrics(*o); });
}

void add_diag_command(CLI::App& app, command_table& commands) {
  auto o = std::make_shared<run_opts>();
  auto diag = app.add_subcommand("diag", "write a redacted diagnostic report of a run, print its path");
  add_run_opts(diag, *o);
  commands.add(diag, [o] { return cmd_diag(o->cwd, o->run_id, o->json); });
}

} // namespace crew::cli
