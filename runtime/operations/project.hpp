#pragma once

// A project root as every operation behind the CLI and the embedding API
// sees it: its merged config, its resources and the node settings they
// imply. Bad input throws input_error.

#include <filesystem>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/resources.hpp"
#include "runtime/supervision/node_options.hpp"
#include "store/event_log.hpp"

namespace crew {

/// A project root with its merged config and discovered resources.
struct project_context {
  std::filesystem::path project_root;
  std::filesystem::path crew_root; ///< <project_root>/.crew
  crew_config config;
  resource_set resources;
};

/// Loads config (user < project < `overrides`) and resources for `cwd`.
project_context load_project(const std::filesystem::path& cwd,
                             const std::vector<std::string>& overrides);

/// The node settings of a project: fsync policy, metric sink directory and
/// interval, OTLP export. Throws input_error naming `otlp.endpoint` when
/// `otlp.enabled` is set without one.
node_options node_options_for(const project_context& ctx);

/// The store's fsync policy for a config value.
fsync_policy to_policy(fsync_mode mode) noexcept;

/// The crew root (`<project>/.crew`) for a --cwd argument.
std::filesystem::path crew_root_for(const std::filesystem::path& cwd);

} // namespace crew
