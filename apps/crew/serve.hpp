#pragma once

// `crew serve`: a long-lived node with an HTTP API and Prometheus /metrics.

#include <filesystem>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "common.hpp"

namespace crew::cli {

/// Adds `crew serve`. It runs the node until SIGINT/SIGTERM; an empty
/// --host, a negative --port and an empty --token fall back to the config
/// keys `serve.host`, `serve.port`, `serve.token`. Bad options (a
/// non-loopback host without a token) are input errors.
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
void add_serve_command(CLI::App& app, command_table& commands);

/// The address of the project's live `crew serve`.
struct live_serve {
  std::string host;
  int port = 0;
};

/// The live `crew serve` of the project, from `<crew root>/state/serve.json`;
/// none when that names no live process with a port.
std::optional<live_serve> find_live_serve(const std::filesystem::path& root);

} // namespace crew::cli
