#include "runtime/workers/worktree.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "runtime/workers/process.hpp"
#include "store/atomic_file.hpp"
#include "store/paths.hpp"

namespace fs = std::filesystem;

namespace crew {

namespace {

using json = nlohmann::ordered_json;

constexpr uint64_t git_timeout_ms = 300'000;
constexpr uint64_t default_hook_timeout_ms = 30'000;
constexpr uint64_t max_hook_timeout_ms = 300'000;
constexpr size_t max_hook_stdout = 1 << 20;
constexpr size_t max_listed_dirty = 20;
constexpr int add_attempts = 8;
constexpr const char* meta_file = "crew-worktree.json";

// -- running git --------------------------------------------------------------

struct git_out {
  process_outcome outcome;
  std::string out;

  bool ok() const noexcept {
    return outcome.success();
  }

  /// git's own complaint (its stderr), else how the process ended.
  std::string why() const;
};

std::string trim(std::string_view s) {
  auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos)
    return {};
  auto last = s.find_last_not_of(" \t\r\n");
  return std::string{s.substr(first, last - first + 1)};
}

std::string git_out::why() const {
  auto err = trim(outcome.stderr_tail);
  if (!outcome.spawned)
    return outcome.error;
  if (err.empty())
    return outcome.error;
  return outcome.exit_code > 0 ? err : outcome.error + ": " + err;
}

/// Runs `git <args>` in `cwd` without a shell. `LC_ALL=C` keeps the messages
/// we match stable; `GIT_OPTIONAL_LOCKS=0` keeps `git status` from taking the
/// index lock while concurrent tasks run `git worktree add`.
git_out run_git(const fs::path& cwd, std::vector<std::string> args,
                std::vector<std::string> env = {}, std::string input = {}) {
  process_spec spec;
  spec.argv.reserve(args.size() + 1);
  spec.argv.emplace_back("git");
  for (auto& x : args)
    spec.argv.push_back(std::move(x));
  spec.cwd = cwd.string();
  spec.env = {"LC_ALL=C", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0"};
  for (auto& x : env)
    spec.env.push_back(std::move(x));
  spec.stdin_data = std::move(input);
  spec.timeout_ms = git_timeout_ms;
  spec.kill_grace_ms = 1000;
  git_out res;
  process_callbacks cb;
  cb.on_stdout = [&res](std::string_view chunk) { res.out.append(chunk); };
  res.outcome = run_process(spec, cb);
  return res;
}

[[noreturn]] void fail_git(std::string_view what, const git_out& res) {
  throw io_error(fmt::format("worktree mode: {} failed: {}", what, res.why()));
}

/// Runs git and returns its trimmed stdout; throws `io_error` on failure.
std::string git_text(const fs::path& cwd, std::vector<std::string> args,
                     std::string_view what) {
  auto res = run_git(cwd, std::move(args));
  if (!res.ok())
    fail_git(what, res);
  return trim(res.out);
}

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    auto line = text.substr(pos, nl == std::string_view::npos ? text.size() - pos
                                                              : nl - pos);
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (!line.empty())
      out.emplace_back(line);
    if (nl == std::string_view::npos)
      break;
    pos = nl + 1;
  }
  return out;
}

// -- paths --------------------------------------------------------------------

fs::path canonical_or_self(const fs::path& p) {
  std::error_code ec;
  auto out = fs::weakly_canonical(fs::absolute(p), ec);
  return ec ? fs::absolute(p).lexically_normal() : out;
}

/// Returns `p` relative to `root` when `p` lies inside it (empty for `root`
/// itself), else nullopt.
std::optional<fs::path> inside(const fs::path& p, const fs::path& root) {
  auto rel = canonical_or_self(p).lexically_relative(canonical_or_self(root));
  if (rel.empty())
    return std::nullopt;
  if (rel == ".")
    return fs::path{};
  if (*rel.begin() == "..")
    return std::nullopt;
  return rel;
}

std::string literal_exclude(const fs::path& rel) {
  return ":(top,exclude,literal)" + rel.generic_string();
}

void require_valid_task_id(std::string_view id) {
  if (!is_valid_run_id(id))
    throw input_error(fmt::format(
        "invalid task id '{}': expected 1..128 characters from [A-Za-z0-9_-]",
        id));
}

/// Keeps a hook-reported path when it names something inside the worktree.
std::optional<std::string> safe_relative(std::string_view s) {
  if (s.empty())
    return std::nullopt;
  auto p = fs::path{std::string{s}}.lexically_normal();
  if (p.is_absolute() || p.empty() || p == "." || *p.begin() == "..")
    return std::nullopt;
  auto out = p.generic_string();
  while (!out.empty() && out.back() == '/')
    out.pop_back();
  return out.empty() ? std::nullopt : std::optional<std::string>{out};
}

// -- the leader ---------------------------------------------------------------

std::string list_dirty(const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size() && i < max_listed_dirty; ++i) {
    out += '\n';
    out += lines[i];
  }
  if (lines.size() > max_listed_dirty)
    out += fmt::format("\n... and {} more", lines.size() - max_listed_dirty);
  return out;
}

/// Runs the checks of `check_worktree_leader` and returns the git top-level.
fs::path check_leader(const fs::path& cwd, const worktree_options& opts,
                      const fs::path& crew_root) {
  auto shown = cwd.string();
  std::error_code ec;
  if (!fs::is_directory(cwd, ec))
    throw input_error(fmt::format(
        "worktree mode: {} is not a directory (run from the project, or use "
        "workspaceMode single)",
        shown));
  auto top_res = run_git(cwd, {"rev-parse", "--show-toplevel"});
  if (!top_res.outcome.spawned)
    throw input_error(fmt::format(
        "worktree mode: cannot run git ({}); install git, or use "
        "workspaceMode single",
        top_res.outcome.error));
  auto top_text = trim(top_res.out);
  if (!top_res.ok() || top_text.empty())
    throw input_error(fmt::format(
        "worktree mode: {} is not a git repository (run `git init` and "
        "commit, or use workspaceMode single)",
        shown));
  fs::path top{top_text};
  if (!run_git(top, {"rev-parse", "--verify", "--quiet", "HEAD^{commit}"}).ok())
    throw input_error(fmt::format(
        "worktree mode: the repository {} has no commits yet (commit once: "
        "task worktrees start from HEAD), or use workspaceMode single",
        top.string()));
  if (!opts.require_clean_leader)
    return top;
  std::vector<std::string> args{"status", "--porcelain", "--", ":(top)"};
  std::vector<fs::path> crew_dirs{top / ".crew", top / ".pi" / "teams",
                                  cwd / ".crew", cwd / ".pi" / "teams"};
  if (!crew_root.empty())
    crew_dirs.push_back(crew_root);
  std::set<std::string> excluded;
  for (auto& dir : crew_dirs)
    if (auto rel = inside(dir, top); rel && !rel->empty())
      if (excluded.insert(rel->generic_string()).second)
        args.push_back(literal_exclude(*rel));
  auto status = run_git(top, std::move(args));
  if (!status.ok())
    fail_git("git status in " + top.string(), status);
  auto dirty = split_lines(status.out);
  if (!dirty.empty())
    throw input_error(fmt::format(
        "worktree mode: the leader repository {} has uncommitted changes "
        "(commit or stash them, or set requireCleanWorktreeLeader: false):{}",
        top.string(), list_dirty(dirty)));
  return top;
}

// -- worktree listing and metadata --------------------------------------------

struct listed_worktree {
  fs::path path;
  std::string head;
  std::string branch; ///< without `refs/heads/`; empty when detached
  bool locked = false;
};

std::vector<listed_worktree> list_worktrees(const fs::path& top) {
  auto res = run_git(top, {"worktree", "list", "--porcelain"});
  if (!res.ok())
    fail_git("git worktree list", res);
  std::vector<listed_worktree> out;
  for (auto& line : split_lines(res.out)) {
    if (line.rfind("worktree ", 0) == 0) {
      out.push_back(listed_worktree{fs::path{line.substr(9)}, {}, {}, false});
    } else if (out.empty()) {
      continue;
    } else if (line.rfind("HEAD ", 0) == 0) {
      out.back().head = line.substr(5);
    } else if (line.rfind("branch refs/heads/", 0) == 0) {
      out.back().branch = line.substr(18);
    } else if (line == "locked" || line.rfind("locked ", 0) == 0) {
      out.back().locked = true;
    }
  }
  return out;
}

const listed_worktree* find_worktree(const std::vector<listed_worktree>& xs,
                                     const fs::path& path) {
  auto want = canonical_or_self(path);
  for (auto& x : xs)
    if (canonical_or_self(x.path) == want)
      return &x;
  return nullptr;
}

/// What `prepare_task_worktree` remembers in the worktree's private git dir
/// (`.git/worktrees/<name>/crew-worktree.json`), which `git worktree remove`
/// deletes along with the worktree and which no `git status` ever shows.
struct worktree_meta {
  bool found = false;
  std::string base;
  std::vector<std::string> synthetic_paths;
  bool node_modules_linked = false;
  std::string agent_rel; ///< the agent cwd relative to the worktree
};

fs::path meta_path(const fs::path& wt) {
  return fs::path{git_text(wt, {"rev-parse", "--absolute-git-dir"},
                           "git rev-parse in " + wt.string())}
         / meta_file;
}

worktree_meta read_meta(const fs::path& wt) {
  worktree_meta out;
  try {
    auto doc = json::parse(read_file(meta_path(wt)));
    out.base = doc.value("base", "");
    for (auto& p : doc.value("syntheticPaths", json::array()))
      if (p.is_string())
        if (auto safe = safe_relative(p.get<std::string>()))
          out.synthetic_paths.push_back(*safe);
    out.node_modules_linked = doc.value("nodeModulesLinked", false);
    out.agent_rel = safe_relative(doc.value("agentCwd", "")).value_or("");
    out.found = true;
  } catch (const std::exception&) {
    // nop: no metadata (created by someone else, or damaged)
  }
  return out;
}

void write_meta(const task_worktree& wt, std::string_view run_id,
                std::string_view task_id) {
  json doc{{"version", 1},
           {"runId", run_id},
           {"taskId", task_id},
           {"branch", wt.branch},
           {"base", wt.base},
           {"syntheticPaths", wt.synthetic_paths},
           {"nodeModulesLinked", wt.node_modules_linked},
           {"agentCwd", inside(wt.agent_cwd, wt.path)
                            .value_or(fs::path{})
                            .generic_string()}};
  write_file_atomic(meta_path(wt.path),
                    doc.dump(2, ' ', false, json::error_handler_t::replace)
                        + "\n",
                    false);
}

/// The commit a worktree without metadata started from, as well as it can be
/// told: where its HEAD meets the leader's HEAD.
std::string guess_base(const fs::path& top, const std::string& head) {
  if (head.empty())
    return {};
  auto res = run_git(top, {"merge-base", head, "HEAD"});
  return res.ok() ? trim(res.out) : head;
}

// -- diffs --------------------------------------------------------------------

struct diff_capture {
  std::string stat;
  std::string patch;
  uint64_t files = 0;
  uint64_t insertions = 0;
  uint64_t deletions = 0;

  bool empty() const noexcept {
    return files == 0 && patch.empty();
  }

  std::string artifact() const {
    if (stat.empty() && patch.empty())
      return {};
    return stat + "\n\n" + patch;
  }
};

/// Removes a file at scope exit.
struct scoped_file {
  fs::path path;
  ~scoped_file() {
    std::error_code ec;
    fs::remove(path, ec);
    fs::remove(fs::path{path.string() + ".lock"}, ec);
  }
};

fs::path temp_index_path() {
  static std::atomic<uint64_t> counter{0};
  return fs::temp_directory_path()
         / fmt::format("crew-diff-{}-{}.index", ::getpid(), ++counter);
}

/// Pathspecs leaving out what the setup hook generated and the node_modules
/// links, which are not the task's work.
std::vector<std::string> diff_excludes(const fs::path& wt,
                                       const fs::path& agent_cwd,
                                       const std::vector<std::string>& synth,
                                       bool node_modules_linked) {
  std::vector<std::string> out;
  for (auto& p : synth)
    out.push_back(literal_exclude(p));
  if (node_modules_linked) {
    std::set<std::string> seen;
    std::vector<fs::path> dirs{wt};
    if (!agent_cwd.empty())
      dirs.push_back(agent_cwd);
    for (auto& dir : dirs) {
      auto link = dir / "node_modules";
      std::error_code ec;
      if (!fs::is_symlink(fs::symlink_status(link, ec)))
        continue;
      if (auto rel = inside(dir, wt))
        if (auto r = (*rel / "node_modules"); seen.insert(r.generic_string()).second)
          out.push_back(literal_exclude(r));
    }
  }
  return out;
}

/// Takes the diff from `base` to the working tree of `wt`, untracked files
/// included: they are marked intent-to-add in a copy of the worktree's index
/// (`GIT_INDEX_FILE`), so neither the real index nor the object store changes.
diff_capture capture_diff(const fs::path& wt, const std::string& base,
                          const std::vector<std::string>& excludes,
                          bool binary) {
  auto index_text = git_text(wt, {"rev-parse", "--git-path", "index"},
                             "git rev-parse in " + wt.string());
  fs::path index{index_text};
  if (index.is_relative())
    index = wt / index;
  scoped_file tmp{temp_index_path()};
  std::error_code ec;
  if (fs::exists(index, ec))
    fs::copy_file(index, tmp.path, fs::copy_options::overwrite_existing, ec);
  if (ec)
    throw io_error(fmt::format("worktree mode: cannot copy the index {}: {}",
                               index.string(), ec.message()));
  std::vector<std::string> env{"GIT_INDEX_FILE=" + tmp.path.string()};
  auto with_paths = [&](std::vector<std::string> args) {
    args.push_back("--");
    args.push_back(":(top)");
    args.insert(args.end(), excludes.begin(), excludes.end());
    return args;
  };
  auto others = run_git(wt, with_paths({"ls-files", "--others",
                                        "--exclude-standard", "-z"}),
                        env);
  if (!others.ok())
    fail_git("git ls-files in " + wt.string(), others);
  if (!others.out.empty()) {
    auto add = run_git(wt,
                       {"--literal-pathspecs", "add", "--intent-to-add",
                        "--pathspec-from-file=-", "--pathspec-file-nul"},
                       env, std::move(others.out));
    if (!add.ok())
      fail_git("git add --intent-to-add in " + wt.string(), add);
  }
  auto from = base.empty() ? std::string{"HEAD"} : base;
  auto diff = [&](std::string_view mode) {
    std::vector<std::string> args{"diff", "--no-color", "--no-ext-diff"};
    if (!mode.empty())
      args.emplace_back(mode);
    if (binary && mode.empty())
      args.emplace_back("--binary");
    args.push_back(from);
    auto res = run_git(wt, with_paths(std::move(args)), env);
    if (!res.ok())
      fail_git("git diff in " + wt.string(), res);
    return std::move(res.out);
  };
  diff_capture out;
  out.stat = diff("--stat");
  while (!out.stat.empty() && (out.stat.back() == '\n' || out.stat.back() == ' '))
    out.stat.pop_back();
  out.patch = diff("");
  for (auto& line : split_lines(diff("--numstat"))) {
    auto tab1 = line.find('\t');
    auto tab2 = tab1 == std::string::npos ? tab1 : line.find('\t', tab1 + 1);
    if (tab2 == std::string::npos)
      continue;
    ++out.files;
    // binary files show `-` for both counts
    auto count = [](std::string_view s) -> uint64_t {
      uint64_t n = 0;
      for (auto c : s) {
        if (c < '0' || c > '9')
          return 0;
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      return n;
    };
    out.insertions += count(std::string_view{line}.substr(0, tab1));
    out.deletions += count(
        std::string_view{line}.substr(tab1 + 1, tab2 - tab1 - 1));
  }
  return out;
}

// -- creating worktrees -------------------------------------------------------

std::mutex& add_mutex() {
  static std::mutex m;
  return m;
}

bool lock_contention(std::string_view err) {
  for (auto needle : {"index.lock", "could not lock", "cannot lock",
                      "unable to lock", "Unable to create", ".lock'"})
    if (err.find(needle) != std::string_view::npos)
      return true;
  return false;
}

bool branch_exists(const fs::path& top, const std::string& branch) {
  return run_git(top, {"show-ref", "--verify", "--quiet", "refs/heads/" + branch})
      .ok();
}

void remove_worktree(const fs::path& top, const fs::path& path, bool twice) {
  std::vector<std::string> args{"worktree", "remove", "--force"};
  if (twice)
    args.emplace_back("--force");
  args.push_back(path.string());
  auto res = run_git(top, std::move(args));
  if (!res.ok())
    fail_git("git worktree remove " + path.string(), res);
}

void delete_branch(const fs::path& top, const std::string& branch) {
  auto res = run_git(top, {"branch", "-D", branch});
  if (!res.ok())
    fail_git("git branch -D " + branch, res);
}

/// Result of `add_worktree`: whether the branch was made by this call.
struct added {
  bool new_branch = false;
};

/// `git worktree add [-b] <branch> <path> <base>`, retried on lock contention.
/// An existing (unchecked-out) branch is checked out again instead.
added add_worktree(const fs::path& top, const fs::path& path,
                   const std::string& branch, const std::string& base) {
  added out;
  auto delay = std::chrono::milliseconds{50};
  for (int attempt = 1;; ++attempt) {
    std::vector<std::string> args{"worktree", "add"};
    bool creates = !branch_exists(top, branch);
    if (creates) {
      args.insert(args.end(), {"-b", branch, path.string(), base});
    } else {
      args.insert(args.end(), {path.string(), branch});
    }
    auto res = run_git(top, std::move(args));
    // a failed `-b` attempt may still have made the branch
    if (creates && branch_exists(top, branch))
      out.new_branch = true;
    if (res.ok())
      return out;
    if (attempt >= add_attempts || !lock_contention(res.why())) {
      if (out.new_branch)
        run_git(top, {"branch", "-D", branch});
      fail_git("git worktree add " + path.string(), res);
    }
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds{800});
  }
}

void rollback(const fs::path& top, const task_worktree& wt, bool new_branch) {
  try {
    remove_worktree(top, wt.path, true);
  } catch (const std::exception&) {
    std::error_code ec;
    fs::remove_all(wt.path, ec);
    run_git(top, {"worktree", "prune"});
  }
  if (new_branch)
    run_git(top, {"branch", "-D", wt.branch});
}

/// Parses the hook's `{"syntheticPaths": [...]}` from its whole stdout or,
/// failing that, its last non-empty line; anything else is the hook's log.
std::vector<std::string> parse_hook_output(const std::string& out) {
  std::vector<std::string> result;
  auto try_parse = [&](const std::string& text) {
    auto doc = json::parse(text, nullptr, false);
    if (!doc.is_object())
      return false;
    auto it = doc.find("syntheticPaths");
    if (it != doc.end() && it->is_array())
      for (auto& p : *it)
        if (p.is_string())
          if (auto safe = safe_relative(p.get<std::string>()))
            result.push_back(*safe);
    return true;
  };
  if (!try_parse(trim(out))) {
    auto lines = split_lines(out);
    if (!lines.empty())
      try_parse(trim(lines.back()));
  }
  std::sort(result.begin(), result.end());
  result.erase(std::unique(result.begin(), result.end()), result.end());
  return result;
}

/// Runs the setup hook in a fresh worktree; returns its synthetic paths.
std::vector<std::string> run_setup_hook(const task_worktree& wt,
                                        const worktree_options& opts,
                                        std::string_view run_id,
                                        std::string_view task_id,
                                        std::string_view agent) {
  json input{{"version", 1},
             {"repoRoot", wt.repo_root.string()},
             {"worktreePath", wt.path.string()},
             {"agentCwd", wt.agent_cwd.string()},
             {"branch", wt.branch},
             {"runId", run_id},
             {"taskId", task_id},
             {"agent", agent}};
  process_spec spec;
  spec.command_line = opts.setup_hook;
  spec.cwd = wt.path.string();
  spec.stdin_data
      = input.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  spec.timeout_ms = opts.setup_hook_timeout_ms == 0
                        ? default_hook_timeout_ms
                        : std::min(opts.setup_hook_timeout_ms,
                                   max_hook_timeout_ms);
  spec.kill_grace_ms = 1000;
  std::string stdout_text;
  process_callbacks cb;
  cb.on_stdout = [&stdout_text](std::string_view chunk) {
    if (stdout_text.size() < max_hook_stdout)
      stdout_text.append(chunk.substr(
          0, std::min(chunk.size(), max_hook_stdout - stdout_text.size())));
  };
  auto res = run_process(spec, cb);
  if (!res.success()) {
    auto err = trim(res.stderr_tail);
    throw io_error(fmt::format(
        "worktree mode: the setup hook `{}` failed for task {} in {}: {}{}",
        opts.setup_hook, task_id, wt.path.string(), res.error,
        err.empty() ? std::string{} : ": " + err));
  }
  return parse_hook_output(stdout_text);
}

/// Links `node_modules` of the leader's top-level and cwd into the worktree.
bool link_node_modules(const fs::path& top, const fs::path& leader_cwd,
                       const task_worktree& wt) {
  bool linked = false;
  std::vector<fs::path> dirs{top};
  if (auto rel = inside(leader_cwd, top); rel && !rel->empty())
    dirs.push_back(canonical_or_self(leader_cwd));
  for (auto& dir : dirs) {
    auto rel = inside(dir, top);
    if (!rel)
      continue;
    auto source = dir / "node_modules";
    auto target = wt.path / *rel / "node_modules";
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status(target, ec))) {
      linked = true;
      continue;
    }
    if (!fs::is_directory(source, ec) || fs::exists(fs::symlink_status(target, ec)))
      continue;
    fs::create_directories(target.parent_path(), ec);
    fs::create_directory_symlink(source, target, ec);
    if (ec)
      throw io_error(fmt::format("worktree mode: cannot link {} to {}: {}",
                                 target.string(), source.string(),
                                 ec.message()));
    linked = true;
  }
  return linked;
}

// -- cleanup ------------------------------------------------------------------

void write_cleanup_diff(const fs::path& artifacts_dir, const std::string& name,
                        const diff_capture& diff, cleanup_report& rep) {
  auto file = artifacts_dir / "cleanup" / (name + ".diff");
  write_file_atomic(file, diff.artifact());
  rep.artifacts.push_back(file.string());
}

/// Handles one of the run's worktrees; failures land in `rep.errors`.
void cleanup_one(const fs::path& top, const listed_worktree& w,
                 const fs::path& artifacts_dir, bool force,
                 cleanup_report& rep) {
  auto name = w.path.filename().string();
  try {
    auto meta = read_meta(w.path);
    auto base = meta.found && !meta.base.empty() ? meta.base
                                                 : guess_base(top, w.head);
    auto excludes = diff_excludes(w.path, w.path / meta.agent_rel,
                                  meta.synthetic_paths,
                                  meta.node_modules_linked);
    std::vector<std::string> args{"status", "--porcelain", "--", ":(top)"};
    args.insert(args.end(), excludes.begin(), excludes.end());
    auto status = run_git(w.path, std::move(args));
    if (!status.ok())
      fail_git("git status in " + w.path.string(), status);
    bool dirty = !trim(status.out).empty();
    if (!dirty && !base.empty() && !w.head.empty() && base != w.head) {
      auto ahead = git_text(w.path, {"rev-list", "--count", base + "..HEAD"},
                            "git rev-list in " + w.path.string());
      dirty = ahead != "0";
    }
    if (dirty) {
      // saved before anything is removed; a failure here keeps the worktree
      write_cleanup_diff(artifacts_dir, name,
                         capture_diff(w.path, base, excludes, true), rep);
      if (!force) {
        rep.preserved.push_back(name);
        return;
      }
    }
    remove_worktree(top, w.path, force);
    if (w.branch.rfind("pi-crew/", 0) == 0)
      delete_branch(top, w.branch);
    rep.removed.push_back(name);
  } catch (const std::exception& e) {
    rep.errors.push_back(fmt::format("{}: {}", name, e.what()));
  }
}

/// Removes the run's branches no worktree uses (left by a worktree deleted by
/// hand, or by an interrupted cleanup). One whose commits the leader's HEAD
/// lacks is kept, unless `force`, which saves its diff first.
void cleanup_branches(const fs::path& top, std::string_view run_id,
                      const fs::path& artifacts_dir, bool force,
                      cleanup_report& rep) {
  auto prefix = worktree_branch_name(run_id, "x");
  prefix.resize(prefix.size() - 2); // "pi-crew/<run>": matches "<prefix>/*"
  auto refs = run_git(top, {"for-each-ref", "--format=%(refname)",
                            "refs/heads/" + prefix});
  if (!refs.ok()) {
    rep.errors.push_back(fmt::format("git for-each-ref: {}", refs.why()));
    return;
  }
  std::set<std::string> used;
  for (auto& w : list_worktrees(top))
    used.insert(w.branch);
  for (auto& ref : split_lines(refs.out)) {
    auto branch = ref.substr(std::string_view{"refs/heads/"}.size());
    if (used.count(branch) > 0)
      continue;
    try {
      bool merged = run_git(top, {"merge-base", "--is-ancestor", branch, "HEAD"})
                        .ok();
      if (!merged) {
        if (!force) {
          rep.preserved.push_back(branch);
          continue;
        }
        auto base = guess_base(top, branch);
        auto res = run_git(top, {"diff", "--no-color", "--no-ext-diff",
                                 "--binary", base, branch});
        if (!res.ok())
          fail_git("git diff " + branch, res);
        diff_capture diff;
        diff.patch = std::move(res.out);
        write_cleanup_diff(artifacts_dir, fs::path{branch}.filename().string(),
                           diff, rep);
      }
      delete_branch(top, branch);
      rep.removed.push_back(branch);
    } catch (const std::exception& e) {
      rep.errors.push_back(fmt::format("{}: {}", branch, e.what()));
    }
  }
}

} // namespace

// -- public API ---------------------------------------------------------------

void check_worktree_leader(const fs::path& cwd, const worktree_options& opts,
                           const fs::path& crew_root) {
  check_leader(cwd, opts, crew_root);
}

std::string worktree_branch_name(std::string_view run_id,
                                 std::string_view task_id) {
  auto component = [](std::string_view id) {
    std::string out;
    for (auto c : id) {
      if (c >= 'A' && c <= 'Z')
        c = static_cast<char>(c - 'A' + 'a');
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
                || c == '-' || c == '.';
      // git ref rules: no leading '.', no ".."
      if (c == '.' && (out.empty() || out.back() == '.'))
        ok = false;
      out += ok ? c : '-';
    }
    if (out.empty())
      out = "-";
    if (out.back() == '.')
      out.back() = '-';
    if (out.size() >= 5 && out.compare(out.size() - 5, 5, ".lock") == 0)
      out[out.size() - 5] = '-';
    return out;
  };
  return "pi-crew/" + component(run_id) + "/" + component(task_id);
}

task_worktree prepare_task_worktree(const fs::path& leader_cwd,
                                    const fs::path& crew_root,
                                    std::string_view run_id,
                                    std::string_view task_id,
                                    const worktree_options& opts,
                                    std::string_view agent) {
  require_valid_run_id(run_id);
  require_valid_task_id(task_id);
  auto top = check_leader(leader_cwd, opts, crew_root);
  task_worktree wt;
  wt.path = (fs::absolute(crew_root) / "worktrees" / std::string{run_id}
             / std::string{task_id})
                .lexically_normal();
  wt.branch = worktree_branch_name(run_id, task_id);
  wt.repo_root = top;
  auto rel = inside(leader_cwd, top).value_or(fs::path{});
  bool created = false;
  added how;
  {
    std::lock_guard<std::mutex> guard{add_mutex()};
    auto listed = list_worktrees(top);
    if (auto found = find_worktree(listed, wt.path)) {
      if (found->branch != wt.branch)
        throw input_error(fmt::format(
            "worktree mode: {} is on {} instead of branch {} (run `crew "
            "cleanup {}` or remove the worktree)",
            wt.path.string(),
            found->branch.empty() ? "a detached HEAD"
                                  : "branch " + found->branch,
            wt.branch, run_id));
      wt.reused = true;
      auto meta = read_meta(wt.path);
      wt.base = meta.found && !meta.base.empty() ? meta.base
                                                 : guess_base(top, found->head);
      wt.synthetic_paths = std::move(meta.synthetic_paths);
      wt.node_modules_linked = meta.node_modules_linked;
    } else {
      std::error_code ec;
      if (fs::exists(wt.path, ec) && !fs::is_empty(wt.path, ec))
        throw input_error(fmt::format(
            "worktree mode: {} exists but is not a git worktree of {} (move "
            "it away, or run `crew cleanup {}`)",
            wt.path.string(), top.string(), run_id));
      for (auto& w : listed)
        if (w.branch == wt.branch)
          throw input_error(fmt::format(
              "worktree mode: branch {} is already checked out at {}",
              wt.branch, w.path.string()));
      fs::create_directories(wt.path.parent_path(), ec);
      auto head = git_text(top, {"rev-parse", "--verify", "HEAD^{commit}"},
                           "git rev-parse HEAD in " + top.string());
      how = add_worktree(top, wt.path, wt.branch, head);
      created = true;
      // an existing branch checked out again keeps its earlier commits
      wt.reused = !how.new_branch;
      wt.base = how.new_branch ? head : guess_base(top, wt.branch);
    }
  }
  wt.agent_cwd = rel.empty() ? wt.path : (wt.path / rel).lexically_normal();
  try {
    std::error_code ec;
    fs::create_directories(wt.agent_cwd, ec);
    if (created && !opts.setup_hook.empty())
      wt.synthetic_paths = run_setup_hook(wt, opts, run_id, task_id, agent);
    if (opts.link_node_modules)
      wt.node_modules_linked = link_node_modules(top, leader_cwd, wt)
                               || wt.node_modules_linked;
    write_meta(wt, run_id, task_id);
  } catch (...) {
    if (created)
      rollback(top, wt, how.new_branch);
    throw;
  }
  return wt;
}

void record_task_diff(const task_worktree& wt, const fs::path& artifacts_dir,
                      std::string_view task_id) {
  require_valid_task_id(task_id);
  auto base = wt.base;
  auto synth = wt.synthetic_paths;
  auto linked = wt.node_modules_linked;
  if (base.empty()) {
    auto meta = read_meta(wt.path);
    base = meta.base;
    if (synth.empty())
      synth = meta.synthetic_paths;
    linked = linked || meta.node_modules_linked;
  }
  auto diff = capture_diff(wt.path, base,
                           diff_excludes(wt.path, wt.agent_cwd, synth, linked),
                           false);
  auto id = std::string{task_id};
  write_file_atomic(artifacts_dir / "diffs" / (id + ".diff"), diff.artifact());
  json stat{{"filesChanged", diff.files},
            {"insertions", diff.insertions},
            {"deletions", diff.deletions},
            {"diffStat", diff.stat},
            {"syntheticPaths", synth},
            {"nodeModulesLinked", linked}};
  write_file_atomic(artifacts_dir / "metadata" / (id + ".diff-stat.json"),
                    stat.dump(2, ' ', false, json::error_handler_t::replace)
                        + "\n");
}

cleanup_report cleanup_run_worktrees(const fs::path& leader_cwd,
                                     const fs::path& crew_root,
                                     std::string_view run_id,
                                     const fs::path& artifacts_dir,
                                     bool force) {
  require_valid_run_id(run_id);
  cleanup_report rep;
  auto run_dir = (fs::absolute(crew_root) / "worktrees" / std::string{run_id})
                     .lexically_normal();
  std::error_code ec;
  auto top_res = run_git(leader_cwd, {"rev-parse", "--show-toplevel"});
  auto top_text = trim(top_res.out);
  if (!top_res.ok() || top_text.empty()) {
    if (fs::exists(run_dir, ec))
      rep.errors.push_back(fmt::format(
          "{} is not a git repository ({}): cannot remove the worktrees in {}",
          leader_cwd.string(), top_res.why(), run_dir.string()));
    return rep;
  }
  fs::path top{top_text};
  try {
    auto prune = run_git(top, {"worktree", "prune"});
    if (!prune.ok())
      rep.errors.push_back("git worktree prune: " + prune.why());
    auto run_canon = canonical_or_self(run_dir);
    std::vector<listed_worktree> mine;
    for (auto& w : list_worktrees(top))
      if (canonical_or_self(w.path).parent_path() == run_canon)
        mine.push_back(w);
    std::sort(mine.begin(), mine.end(),
              [](auto& x, auto& y) { return x.path < y.path; });
    for (auto& w : mine)
      cleanup_one(top, w, artifacts_dir, force, rep);
    cleanup_branches(top, run_id, artifacts_dir, force, rep);
    run_git(top, {"worktree", "prune"});
  } catch (const std::exception& e) {
    rep.errors.push_back(e.what());
  }
  // what is left in the run's directory is not a worktree of ours
  if (fs::is_directory(run_dir, ec)) {
    std::vector<fs::path> left;
    for (auto& entry : fs::directory_iterator{run_dir, ec}) {
      if (entry.is_directory(ec) && fs::is_empty(entry.path(), ec))
        fs::remove(entry.path(), ec);
      else
        left.push_back(entry.path());
    }
    std::sort(left.begin(), left.end());
    for (auto& p : left) {
      auto name = p.filename().string();
      bool reported
          = std::find(rep.preserved.begin(), rep.preserved.end(), name)
                != rep.preserved.end()
            || std::any_of(rep.errors.begin(), rep.errors.end(),
                           [&](auto& e) { return e.rfind(name + ": ", 0) == 0; });
      if (!reported)
        rep.errors.push_back(fmt::format(
            "{} is not a registered git worktree; left in place", p.string()));
    }
    if (fs::is_empty(run_dir, ec))
      fs::remove(run_dir, ec);
  }
  return rep;
}

} // namespace crew
