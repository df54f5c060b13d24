#pragma once

// `crew serve` (a long-lived node with an HTTP API) and `crew metrics`.

#include <string>

namespace crew::cli {

/// Options of `crew serve`; empty host / negative port / empty token fall
/// back to the config keys `serve.host`, `serve.port`, `serve.token`.
struct serve_options {
  std::string cwd = ".";
  bool json = false;
  std::string host;
  int port = -1;
  std::string token;
};

/// Runs the node until SIGINT/SIGTERM; returns the exit code. Throws
/// input_error for bad options (a non-loopback host without a token).
///
/// Routes (all GET; JSON unless said otherwise):
///   /metrics[?filter=GLOB]       Prometheus text exposition
///   /healthz                     {status, pid, uptimeMs}
///   /api/metrics[?filter=GLOB]   metric snapshot as JSON
///   /api/runs                    recent runs, newest first
///   /api/runs/{id}               {manifest, tasks} as `crew status --json`
///   /api/runs/{id}/events?since=SEQ&limit=N   {events, nextSeq, total}
/// There are no mutating routes yet; when they come they will require the
/// token (`Authorization: Bearer T`). On a non-loopback host every route but
/// /healthz requires it already.
int cmd_serve(const serve_options& o);

/// Options of `crew metrics`.
struct metrics_options {
  std::string cwd = ".";
  bool json = false;
  std::string format = "prometheus";
  std::string filter;
};

/// Prints the metric snapshot of the live `crew serve` of the project (from
/// `<crew root>/state/serve.json`), or else the one derived from the logs.
int cmd_metrics(const metrics_options& o);

} // namespace crew::cli
