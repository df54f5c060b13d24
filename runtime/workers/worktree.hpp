#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace crew {

/// Settings of worktree mode: config `requireCleanWorktreeLeader` and the
/// `worktree.*` section (inventory §9).
struct worktree_options {
  /// Refuses a leader with uncommitted changes (`git status --porcelain`).
  bool require_clean_leader = true;
  /// Shell command (`/bin/sh -c`) run in each freshly created worktree, with
  /// the JSON of inventory §5.1 step 1 on stdin. Its stdout may hold
  /// `{"syntheticPaths": [...]}`: files it generated, left out of diffs.
  std::string setup_hook;
  /// Limit of the setup hook in ms; 0 means the default, capped at 300 000.
  uint64_t setup_hook_timeout_ms = 30000;
  /// Symlinks the leader's `node_modules` into fresh worktrees.
  bool link_node_modules = false;
};

/// Checks that worktree mode can run for a project: `cwd` is inside a git
/// work tree with at least one commit and, when required, the leader is clean
/// (`git status --porcelain` empty). The crew's own files never make the
/// leader dirty: `<top>/.crew`, `<top>/.pi/teams`, the same under `cwd`, and
/// `crew_root` when given are left out of the check (the worktrees live
/// there). Throws `input_error` with a message that says what to fix.
void check_worktree_leader(const std::filesystem::path& cwd,
                           const worktree_options& opts,
                           const std::filesystem::path& crew_root = {});

/// The git worktree one task runs in.
struct task_worktree {
  std::filesystem::path path; ///< `<crew_root>/worktrees/<runId>/<taskId>`
  std::string branch;         ///< `pi-crew/<runId>/<taskId>`, sanitized
  /// The worktree existed already (or its branch did, and was checked out
  /// again), so it may hold earlier work.
  bool reused = false;
  std::filesystem::path repo_root; ///< the leader's git top-level
  /// Where the agent runs: `path` plus the leader cwd relative to the top.
  std::filesystem::path agent_cwd;
  /// The commit the worktree started from; diffs are taken against it, so
  /// they include work the agent committed.
  std::string base;
  /// Paths (relative to `path`) the setup hook reported as generated.
  std::vector<std::string> synthetic_paths;
  bool node_modules_linked = false;
};

/// Returns the branch of a task's worktree: `pi-crew/<runId>/<taskId>`, with
/// both ids lowercased and every character outside `[a-z0-9._-]` (and any
/// `.` that would break git's ref rules: leading, trailing, doubled, or
/// `.lock` at the end) replaced by `-`.
std::string worktree_branch_name(std::string_view run_id,
                                 std::string_view task_id);

/// Creates `<crew_root>/worktrees/<runId>/<taskId>` on a new branch
/// `worktree_branch_name(...)` from the leader's HEAD commit, or reuses it
/// when it exists on that branch (another branch is an `input_error`). A
/// fresh worktree runs the setup hook (on failure or timeout the worktree and
/// its new branch are removed again and `io_error` is thrown) and, when
/// asked, gets a `node_modules` symlink. Checks the leader first (see
/// `check_worktree_leader`). Safe to call concurrently for different tasks:
/// creation is serialized in-process and retried briefly on git lock errors
/// from other processes. `agent` only goes into the hook's JSON.
task_worktree prepare_task_worktree(const std::filesystem::path& leader_cwd,
                                    const std::filesystem::path& crew_root,
                                    std::string_view run_id,
                                    std::string_view task_id,
                                    const worktree_options& opts,
                                    std::string_view agent = {});

/// Records a task's changes under `artifacts_dir` (the run's artifacts root):
/// `diffs/<taskId>.diff` (`git diff --stat`, a blank line, `git diff`) and
/// `metadata/<taskId>.diff-stat.json` `{filesChanged, insertions, deletions,
/// diffStat, syntheticPaths, nodeModulesLinked}`. The diff runs from
/// `wt.base` to the working tree and includes untracked (not ignored) files,
/// marked intent-to-add in a throwaway copy of the index: the worktree's own
/// index and the object store are left untouched. Synthetic paths and the
/// `node_modules` link are left out. Throws `io_error` when git fails.
void record_task_diff(const task_worktree& wt,
                      const std::filesystem::path& artifacts_dir,
                      std::string_view task_id);

/// What `cleanup_run_worktrees` did.
struct cleanup_report {
  /// Worktree names (task ids) removed with their branches, then leftover
  /// branches of the run removed without a worktree (full branch names).
  std::vector<std::string> removed;
  /// Dirty worktrees kept (their diff saved), then leftover branches kept
  /// because they hold commits the leader's HEAD lacks.
  std::vector<std::string> preserved;
  std::vector<std::string> errors;
  /// The `cleanup/<name>.diff` files written.
  std::vector<std::string> artifacts;
};

/// `crew cleanup RUN [--force]`: prunes stale worktree entries, then removes
/// the run's worktrees and `pi-crew/` branches. A dirty worktree (changes,
/// untracked files or commits beyond its base, apart from synthetic paths and
/// the `node_modules` link) gets its diff written to
/// `<artifacts_dir>/cleanup/<name>.diff` (with `--binary`, so `git apply`
/// restores it) and is preserved, unless `force`, which removes it after the
/// diff was saved (never when saving failed). Idempotent: a second call finds
/// nothing left. Failures go to `errors`; throws only for an invalid run id.
cleanup_report cleanup_run_worktrees(const std::filesystem::path& leader_cwd,
                                     const std::filesystem::path& crew_root,
                                     std::string_view run_id,
                                     const std::filesystem::path& artifacts_dir,
                                     bool force);

} // namespace crew
