#pragma once

// Internal to runtime/operations/: a run's `run.lock`, which names the one
// process that may write its log ({pid, startTime}).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace crew::detail {

/// The process a lock file names.
struct lock_owner {
  int64_t pid = 0;
  uint64_t start = 0;
  bool handed_over = false; ///< written by hand_over_run_lock, not yet adopted
};

/// The owner named by the lock at `path`; a missing or unreadable lock names
/// nobody (pid 0).
lock_owner read_lock(const std::filesystem::path& path);

/// True if the owner's process is alive and is the one that took the lock
/// (not a reused pid).
bool owner_alive(const lock_owner& o);

/// Holds `run.lock` (O_EXCL, {pid, startTime}) until destroyed, unless it
/// was handed over to another process.
struct run_lock {
  std::filesystem::path path;
  bool handed_over = false;
  ~run_lock();
};

/// The lock file's content naming process `pid`.
std::string lock_body(int64_t pid, bool handed_over = false);

/// Takes the lock at `path` for this process (a `run_lock`): adopts one
/// handed over to it, moves a stale one aside. Throws input_error naming
/// `run_id` if a live process owns it.
std::shared_ptr<void> acquire_lock(const std::filesystem::path& path,
                                   std::string_view run_id);

} // namespace crew::detail
