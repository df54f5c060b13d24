#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// The on-disk locations of one run (inventory §2.2), derived from the crew
/// root and the run id. Only the three directories are stored; file paths are
/// computed on demand.
struct run_paths {
  std::filesystem::path crew_root;     ///< `<project>/.crew`
  std::filesystem::path state_dir;     ///< `<crew_root>/state/runs/<id>`
  std::filesystem::path artifacts_dir; ///< `<crew_root>/artifacts/<id>`

  /// `<state_dir>/manifest.json`: the run manifest snapshot.
  std::filesystem::path manifest() const;

  /// `<state_dir>/tasks.json`: the task state snapshot.
  std::filesystem::path tasks() const;

  /// `<state_dir>/events.jsonl`: the event log, the source of truth.
  std::filesystem::path events() const;

  /// `<state_dir>/plan.json`: the immutable task graph.
  std::filesystem::path plan() const;

  /// `<state_dir>/plan.bin`: plan.json in binary (a cache for recovery).
  std::filesystem::path plan_bin() const;

  /// `<state_dir>/checkpoint.bin`: task states at a durable seq (a cache
  /// that bounds the replay of recovery).
  std::filesystem::path checkpoint() const;

  /// `<state_dir>/deadletter.jsonl`.
  std::filesystem::path deadletter() const;

  /// `<state_dir>/run.lock`.
  std::filesystem::path lock() const;

  /// `<state_dir>/cancel-request.json`: written by `crew cancel`, polled by
  /// the process that owns the run.
  std::filesystem::path cancel_request() const;

  /// `<state_dir>/deadletter-request.jsonl`: task ids to deadletter by
  /// hand, written by `crew deadletter --task` for the owning process.
  std::filesystem::path deadletter_request() const;

  /// `<state_dir>/agents`: per-task agent records and streams.
  std::filesystem::path agents_dir() const;
};

/// Returns the paths of run `run_id` under `crew_root`. Validates the id
/// (throws `input_error` for an id that could escape the root).
run_paths make_run_paths(const std::filesystem::path& crew_root,
                         std::string_view run_id);

/// Returns a fresh run id `team_<YYYYMMDDHHMMSS>_<8 hex>` (UTC time of `now`,
/// 4 random bytes).
std::string new_run_id(std::chrono::system_clock::time_point now);

/// Checks that `id` is safe as a single path component: 1..128 characters
/// from `[A-Za-z0-9_-]`, not starting with `-`. Rejects `..`, `../x`,
/// absolute paths and empty ids.
bool is_valid_run_id(std::string_view id) noexcept;

/// Throws `input_error(errc::invalid_input)` naming `id` unless
/// `is_valid_run_id(id)`.
void require_valid_run_id(std::string_view id);

/// Lists the ids of the runs under `<crew_root>/state/runs` (directories with
/// a valid run id), sorted ascending; empty when the directory is missing.
std::vector<std::string> list_run_ids(const std::filesystem::path& crew_root);

} // namespace crew
