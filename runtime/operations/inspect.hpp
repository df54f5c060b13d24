#pragma once

// Reading a run as it is on disk, for inspection; never writes.

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "store/model.hpp"
#include "store/replay.hpp"

namespace crew {

/// A run as found on disk: manifest, plan and the replayed log.
struct run_view {
  run_manifest manifest;
  std::vector<planned_task> plan;
  replay_state replay;
  bool owner_alive = false; ///< a live process executes it now
  int64_t owner_pid = 0;
};

/// Loads a run for inspection; never writes. Throws input_error(not_found)
/// for an unknown id and input_error for a path-like one.
run_view load_run(const std::filesystem::path& crew_root, std::string_view run_id);

} // namespace crew
