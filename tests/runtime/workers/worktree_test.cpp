#include "runtime/workers/worktree.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "tests/support/shell.hpp"
#include "tests/support/temp_dir.hpp"

using namespace crew;
namespace fs = std::filesystem;
using crew::test::shell;
using crew::test::slurp;
using crew::test::temp_dir;

namespace {

constexpr const char* run_id = "team_20250101000000_abcd1234";

bool have_git() {
  static const bool found = shell("git --version").first == 0;
  if (!found)
    std::cerr << "worktree_test: git not found on PATH, skipping\n";
  return found;
}

#define SKIP_WITHOUT_GIT()                                                     \
  if (!have_git()) {                                                           \
    MESSAGE("git not found on PATH: worktree test skipped");                   \
    return;                                                                    \
  }

std::string quoted(const fs::path& p) {
  std::string out{"'"};
  out += p.string();
  out += '\'';
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

/// Runs `git <args>` in `dir`, requires success, returns trimmed output.
std::string git(const fs::path& dir, const std::string& args) {
  auto [rc, out] = shell("cd " + quoted(dir) + " && git " + args);
  INFO("git " << args << " in " << dir << ":\n" << out);
  REQUIRE_EQ(rc, 0);
  return trim(out);
}

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream{path, std::ios::binary | std::ios::trunc} << text;
}

/// A temporary git repository with one commit (a.txt, sub/b.txt).
struct repo {
  temp_dir dir{"crew-worktree-test"};
  fs::path root = fs::weakly_canonical(dir.path) / "repo";
  fs::path crew_root = root / ".crew";
  fs::path artifacts = crew_root / "artifacts" / run_id;

  explicit repo(bool commit = true) {
    fs::create_directories(root);
    git(root, "init -q");
    git(root, "config user.name 'Crew Test'");
    git(root, "config user.email crew@example.invalid");
    git(root, "config commit.gpgsign false");
    if (!commit)
      return;
    write(root / "a.txt", "one\ntwo\nthree\n");
    write(root / "sub" / "b.txt", "bee\n");
    git(root, "add -A");
    git(root, "commit -q -m init");
  }

  task_worktree prepare(const std::string& task,
                        const worktree_options& opts = {}) {
    return prepare_task_worktree(root, crew_root, run_id, task, opts);
  }

  std::vector<std::string> branches() {
    auto out = git(root, "for-each-ref --format='%(refname:short)' "
                         "refs/heads/pi-crew");
    std::vector<std::string> xs;
    std::string line;
    std::istringstream in{out};
    while (std::getline(in, line))
      if (!line.empty())
        xs.push_back(line);
    return xs;
  }
};

template <class Error, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected an exception");
  return {};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

template <class T>
bool has(const std::vector<T>& xs, const T& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

nlohmann::json read_json(const fs::path& path) {
  return nlohmann::json::parse(slurp(path));
}

} // namespace

// -- the leader ---------------------------------------------------------------

TEST_CASE("worktree: a directory outside git is rejected with a fix") {
  SKIP_WITHOUT_GIT();
  temp_dir dir{"crew-worktree-test"};
  auto msg = error_of<input_error>(
      [&] { check_worktree_leader(dir.path, worktree_options{}); });
  CHECK(contains(msg, dir.path.string() + " is not a git repository"));
  CHECK(contains(msg, "git init"));
  CHECK(contains(msg, "workspaceMode single"));
}

TEST_CASE("worktree: a repository without commits is rejected") {
  SKIP_WITHOUT_GIT();
  repo r{false};
  auto msg = error_of<input_error>(
      [&] { check_worktree_leader(r.root, worktree_options{}); });
  CHECK(contains(msg, "has no commits yet"));
}

TEST_CASE("worktree: a dirty leader is rejected, listing what is dirty") {
  SKIP_WITHOUT_GIT();
  repo r;
  // the crew's own directory never counts as dirt
  write(r.crew_root / "state" / "runs" / run_id / "manifest.json", "{}");
  CHECK_NOTHROW(check_worktree_leader(r.root, worktree_options{}));
  write(r.root / "a.txt", "changed\n");
  write(r.root / "new.txt", "new\n");
  auto msg = error_of<input_error>(
      [&] { check_worktree_leader(r.root, worktree_options{}); });
  CHECK(contains(msg, "has uncommitted changes"));
  CHECK(contains(msg, "requireCleanWorktreeLeader: false"));
  CHECK(contains(msg, "\n M a.txt"));
  CHECK(contains(msg, "\n?? new.txt"));
  CHECK_FALSE(contains(msg, ".crew"));
  // prepare checks the leader too
  CHECK_THROWS_AS(r.prepare("01_explore"), input_error);
}

TEST_CASE("worktree: a dirty leader is accepted when not required clean") {
  SKIP_WITHOUT_GIT();
  repo r;
  write(r.root / "a.txt", "changed\n");
  worktree_options opts;
  opts.require_clean_leader = false;
  CHECK_NOTHROW(check_worktree_leader(r.root, opts));
  auto wt = r.prepare("01_explore", opts);
  // the worktree starts from HEAD, without the leader's uncommitted change
  CHECK_EQ(slurp(wt.path / "a.txt"), "one\ntwo\nthree\n");
}

// -- preparing ----------------------------------------------------------------

TEST_CASE("worktree: branch names are lowercased and valid refs") {
  SKIP_WITHOUT_GIT();
  CHECK_EQ(worktree_branch_name(run_id, "01_explore"),
           std::string{"pi-crew/"} + run_id + "/01_explore");
  CHECK_EQ(worktree_branch_name("Team_X", "02_Review"),
           "pi-crew/team_x/02_review");
  CHECK_EQ(worktree_branch_name("r", "A b/..c.lock"), "pi-crew/r/a-b-.-c-lock");
  CHECK_EQ(worktree_branch_name("r", ".hidden."), "pi-crew/r/-hidden-");
  CHECK_EQ(worktree_branch_name("r", "x@{y}~^:?*[\\"), "pi-crew/r/x--y--------");
  for (auto task : {"A b/..c.lock", ".hidden.", "x@{y}~^:?*[\\", "01_explore"})
    CHECK_EQ(shell("git check-ref-format --branch '"
                   + worktree_branch_name("r", task) + "'")
                 .first,
             0);
}

TEST_CASE("worktree: two tasks get two worktrees on two branches") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto head = git(r.root, "rev-parse HEAD");
  auto a = r.prepare("01_explore");
  auto b = r.prepare("02_Review");
  CHECK_EQ(a.path, r.crew_root / "worktrees" / run_id / "01_explore");
  CHECK_EQ(b.path, r.crew_root / "worktrees" / run_id / "02_Review");
  CHECK_EQ(a.branch, std::string{"pi-crew/"} + run_id + "/01_explore");
  CHECK_EQ(b.branch, std::string{"pi-crew/"} + run_id + "/02_review");
  CHECK_FALSE(a.reused);
  CHECK_FALSE(b.reused);
  CHECK_EQ(a.base, head);
  CHECK_EQ(a.repo_root, r.root);
  CHECK_EQ(a.agent_cwd, a.path);
  CHECK_EQ(git(a.path, "rev-parse --abbrev-ref HEAD"), a.branch);
  CHECK_EQ(git(b.path, "rev-parse --abbrev-ref HEAD"), b.branch);
  CHECK_EQ(slurp(b.path / "sub" / "b.txt"), "bee\n");
  auto branches = r.branches();
  CHECK_EQ(branches.size(), 2u);
  CHECK(has(branches, a.branch));
  CHECK(has(branches, b.branch));
}

TEST_CASE("worktree: a second prepare reuses the worktree") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto first = r.prepare("01_explore");
  write(first.path / "work.txt", "in progress\n");
  auto again = r.prepare("01_explore");
  CHECK(again.reused);
  CHECK_EQ(again.path, first.path);
  CHECK_EQ(again.branch, first.branch);
  CHECK_EQ(again.base, first.base);
  CHECK_EQ(slurp(again.path / "work.txt"), "in progress\n");
}

TEST_CASE("worktree: a worktree on another branch is an error") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto wt = r.prepare("01_explore");
  git(wt.path, "checkout -q -b other");
  auto msg = error_of<input_error>([&] { r.prepare("01_explore"); });
  CHECK(contains(msg, "is on branch other instead of branch " + wt.branch));
  CHECK(contains(msg, std::string{"crew cleanup "} + run_id));
}

TEST_CASE("worktree: a leader cwd below the top gives the agent that subdir") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto wt = prepare_task_worktree(r.root / "sub", r.crew_root, run_id,
                                  "01_explore", worktree_options{});
  CHECK_EQ(wt.repo_root, r.root);
  CHECK_EQ(wt.agent_cwd, wt.path / "sub");
  CHECK(fs::exists(wt.agent_cwd / "b.txt"));
}

TEST_CASE("worktree: concurrent prepares of different tasks all succeed") {
  SKIP_WITHOUT_GIT();
  repo r;
  constexpr int n = 6;
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      try {
        auto task = std::to_string(i + 1);
        task.insert(0, 1, '0');
        task += "_task";
        r.prepare(task);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(i)] = e.what();
      }
    });
  for (auto& t : threads)
    t.join();
  for (auto& e : errors)
    CHECK_EQ(e, "");
  CHECK_EQ(r.branches().size(), static_cast<size_t>(n));
}

TEST_CASE("worktree: a ref lock held by another process is waited out") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto lock = r.root / ".git" / "refs" / "heads" / "pi-crew" / run_id
              / "01_explore.lock";
  write(lock, "");
  std::thread release{[&] {
    std::this_thread::sleep_for(std::chrono::milliseconds{300});
    fs::remove(lock);
  }};
  task_worktree wt;
  CHECK_NOTHROW(wt = r.prepare("01_explore"));
  release.join();
  CHECK_FALSE(wt.reused);
  CHECK_EQ(git(wt.path, "rev-parse --abbrev-ref HEAD"), wt.branch);
}

// -- setup hook and node_modules ----------------------------------------------

TEST_CASE("worktree: the setup hook gets the JSON and reports synthetic paths") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto input = r.dir.path / "hook-input.json";
  worktree_options opts;
  opts.setup_hook = "cat > " + quoted(input)
                    + " && echo generated > gen.txt && echo preparing"
                      " && echo '{\"syntheticPaths\": [\"gen.txt\", \"../x\"]}'";
  auto wt = prepare_task_worktree(r.root, r.crew_root, run_id, "01_explore",
                                  opts, "coder");
  auto doc = read_json(input);
  CHECK_EQ(doc["version"], 1);
  CHECK_EQ(doc["repoRoot"], r.root.string());
  CHECK_EQ(doc["worktreePath"], wt.path.string());
  CHECK_EQ(doc["agentCwd"], wt.path.string());
  CHECK_EQ(doc["branch"], wt.branch);
  CHECK_EQ(doc["runId"], run_id);
  CHECK_EQ(doc["taskId"], "01_explore");
  CHECK_EQ(doc["agent"], "coder");
  CHECK_EQ(wt.synthetic_paths, std::vector<std::string>{"gen.txt"});
  // generated files are not the task's work
  record_task_diff(wt, r.artifacts, "01_explore");
  auto stat = read_json(r.artifacts / "metadata" / "01_explore.diff-stat.json");
  CHECK_EQ(stat["filesChanged"], 0);
  CHECK_EQ(stat["syntheticPaths"], nlohmann::json::array({"gen.txt"}));
  // a reused worktree does not run the hook again but remembers its output
  fs::remove(input);
  auto again = r.prepare("01_explore", opts);
  CHECK(again.reused);
  CHECK_FALSE(fs::exists(input));
  CHECK_EQ(again.synthetic_paths, std::vector<std::string>{"gen.txt"});
  auto rep = cleanup_run_worktrees(r.root, r.crew_root, run_id, r.artifacts,
                                   false);
  CHECK_EQ(rep.removed, std::vector<std::string>{"01_explore"});
  CHECK(rep.preserved.empty());
}

TEST_CASE("worktree: a failing setup hook is reported and rolled back") {
  SKIP_WITHOUT_GIT();
  repo r;
  worktree_options opts;
  opts.setup_hook = "echo broken dependency >&2; exit 3";
  auto msg = error_of<io_error>([&] { r.prepare("01_explore", opts); });
  CHECK(contains(msg, "setup hook"));
  CHECK(contains(msg, "01_explore"));
  CHECK(contains(msg, "exit code 3"));
  CHECK(contains(msg, "broken dependency"));
  CHECK_FALSE(fs::exists(r.crew_root / "worktrees" / run_id / "01_explore"));
  CHECK(r.branches().empty());
  // the next attempt starts from scratch and runs the hook again
  opts.setup_hook = "true";
  auto wt = r.prepare("01_explore", opts);
  CHECK_FALSE(wt.reused);
}

TEST_CASE("worktree: a setup hook that hangs is stopped at its timeout") {
  SKIP_WITHOUT_GIT();
  repo r;
  worktree_options opts;
  opts.setup_hook = "sleep 30";
  opts.setup_hook_timeout_ms = 300;
  auto start = std::chrono::steady_clock::now();
  auto msg = error_of<io_error>([&] { r.prepare("01_explore", opts); });
  CHECK(contains(msg, "timed out after 300 ms"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds{10});
  CHECK_FALSE(fs::exists(r.crew_root / "worktrees" / run_id / "01_explore"));
  CHECK(r.branches().empty());
}

TEST_CASE("worktree: node_modules is linked and left out of diffs") {
  SKIP_WITHOUT_GIT();
  repo r;
  write(r.root / ".gitignore", "node_modules/\n");
  git(r.root, "add .gitignore");
  git(r.root, "commit -q -m ignore");
  write(r.root / "node_modules" / "pkg" / "index.js", "module.exports = 1;\n");
  worktree_options opts;
  opts.link_node_modules = true;
  auto wt = r.prepare("01_explore", opts);
  CHECK(wt.node_modules_linked);
  CHECK(fs::is_symlink(wt.path / "node_modules"));
  CHECK(fs::exists(wt.path / "node_modules" / "pkg" / "index.js"));
  record_task_diff(wt, r.artifacts, "01_explore");
  auto stat = read_json(r.artifacts / "metadata" / "01_explore.diff-stat.json");
  CHECK_EQ(stat["filesChanged"], 0);
  CHECK_EQ(stat["nodeModulesLinked"], true);
  auto rep = cleanup_run_worktrees(r.root, r.crew_root, run_id, r.artifacts,
                                   false);
  CHECK_EQ(rep.removed, std::vector<std::string>{"01_explore"});
  // the link went, the leader's modules stayed
  CHECK(fs::exists(r.root / "node_modules" / "pkg" / "index.js"));
}

// -- diffs --------------------------------------------------------------------

TEST_CASE("worktree: the diff records a modified and a new file") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto wt = r.prepare("01_explore");
  write(wt.path / "a.txt", "one\nTWO\nthree\nfour\n");
  write(wt.path / "src" / "new.txt", "fresh\nlines\n");
  record_task_diff(wt, r.artifacts, "01_explore");
  auto diff = slurp(r.artifacts / "diffs" / "01_explore.diff");
  CHECK(contains(diff, " a.txt "));
  CHECK(contains(diff, "2 files changed, 4 insertions(+), 1 deletion(-)"));
  CHECK(contains(diff, "diff --git a/a.txt b/a.txt"));
  CHECK(contains(diff, "-two\n+TWO\n"));
  CHECK(contains(diff, "diff --git a/src/new.txt b/src/new.txt"));
  CHECK(contains(diff, "new file mode"));
  CHECK(contains(diff, "+fresh\n+lines\n"));
  auto stat = read_json(r.artifacts / "metadata" / "01_explore.diff-stat.json");
  CHECK_EQ(stat["filesChanged"], 2);
  CHECK_EQ(stat["insertions"], 4);
  CHECK_EQ(stat["deletions"], 1);
  CHECK(contains(stat["diffStat"].get<std::string>(), "2 files changed"));
  CHECK_EQ(stat["syntheticPaths"], nlohmann::json::array());
  CHECK_EQ(stat["nodeModulesLinked"], false);
  // the worktree's own index is untouched: the new file is still untracked
  CHECK(contains(git(wt.path, "status --porcelain"), "?? src/"));
}

TEST_CASE("worktree: the diff includes work the agent committed") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto wt = r.prepare("01_explore");
  write(wt.path / "c.txt", "committed\n");
  git(wt.path, "add c.txt");
  git(wt.path, "commit -q -m work");
  record_task_diff(wt, r.artifacts, "01_explore");
  auto diff = slurp(r.artifacts / "diffs" / "01_explore.diff");
  CHECK(contains(diff, "+committed"));
  // a clean status does not make committed work disposable
  auto rep = cleanup_run_worktrees(r.root, r.crew_root, run_id, r.artifacts,
                                   false);
  CHECK_EQ(rep.preserved, std::vector<std::string>{"01_explore"});
  CHECK(contains(slurp(r.artifacts / "cleanup" / "01_explore.diff"),
                 "+committed"));
}

TEST_CASE("worktree: an unchanged worktree records an empty diff") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto wt = r.prepare("01_explore");
  record_task_diff(wt, r.artifacts, "01_explore");
  CHECK_EQ(slurp(r.artifacts / "diffs" / "01_explore.diff"), "");
  auto stat = read_json(r.artifacts / "metadata" / "01_explore.diff-stat.json");
  CHECK_EQ(stat["filesChanged"], 0);
  CHECK_EQ(stat["insertions"], 0);
  CHECK_EQ(stat["diffStat"], "");
}

// -- cleanup ------------------------------------------------------------------

TEST_CASE("worktree: cleanup removes clean worktrees and keeps a dirty one") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto clean = r.prepare("01_explore");
  auto dirty = r.prepare("02_build");
  write(dirty.path / "a.txt", "rewritten\n");
  write(dirty.path / "bin.dat", std::string{"\0\1\2binary", 9});
  auto rep = cleanup_run_worktrees(r.root, r.crew_root, run_id, r.artifacts,
                                   false);
  CHECK_EQ(rep.removed, std::vector<std::string>{"01_explore"});
  CHECK_EQ(rep.preserved, std::vector<std::string>{"02_build"});
  CHECK(rep.errors.empty());
  auto saved = r.artifacts / "cleanup" / "02_build.diff";
  CHECK_EQ(rep.artifacts, std::vector<std::string>{saved.string()});
  auto diff = slurp(saved);
  CHECK(contains(diff, "+rewritten"));
  CHECK(contains(diff, "GIT binary patch"));
  CHECK_FALSE(fs::exists(clean.path));
  CHECK(fs::exists(dirty.path / "a.txt"));
  CHECK_EQ(r.branches(), std::vector<std::string>{dirty.branch});

  SUBCASE("force removes it after saving its diff") {
    fs::remove(saved);
    auto forced = cleanup_run_worktrees(r.root, r.crew_root, run_id,
                                        r.artifacts, true);
    CHECK_EQ(forced.removed, std::vector<std::string>{"02_build"});
    CHECK(forced.preserved.empty());
    CHECK(forced.errors.empty());
    CHECK_FALSE(fs::exists(dirty.path));
    CHECK_FALSE(fs::exists(r.crew_root / "worktrees" / run_id));
    CHECK(r.branches().empty());
    // the saved diff restores the work on the leader
    CHECK(contains(slurp(saved), "+rewritten"));
    git(r.root, "apply " + quoted(saved));
    CHECK_EQ(slurp(r.root / "a.txt"), "rewritten\n");
    CHECK_EQ(slurp(r.root / "bin.dat"), std::string("\0\1\2binary", 9));
    // and a second cleanup finds nothing to do
    auto twice = cleanup_run_worktrees(r.root, r.crew_root, run_id,
                                       r.artifacts, true);
    CHECK(twice.removed.empty());
    CHECK(twice.preserved.empty());
    CHECK(twice.errors.empty());
  }

  SUBCASE("a second cleanup keeps the dirty one again") {
    auto again = cleanup_run_worktrees(r.root, r.crew_root, run_id,
                                       r.artifacts, false);
    CHECK(again.removed.empty());
    CHECK_EQ(again.preserved, std::vector<std::string>{"02_build"});
    CHECK(again.errors.empty());
    CHECK(contains(slurp(saved), "+rewritten"));
  }
}

TEST_CASE("worktree: cleanup twice, or of a run without worktrees, is fine") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto none = cleanup_run_worktrees(r.root, r.crew_root, run_id, r.artifacts,
                                    false);
  CHECK(none.removed.empty());
  CHECK(none.preserved.empty());
  CHECK(none.errors.empty());
  r.prepare("01_explore");
  r.prepare("02_build");
  auto first = cleanup_run_worktrees(r.root, r.crew_root, run_id, r.artifacts,
                                     false);
  CHECK_EQ(first.removed, (std::vector<std::string>{"01_explore", "02_build"}));
  CHECK(first.errors.empty());
  auto second = cleanup_run_worktrees(r.root, r.crew_root, run_id,
                                      r.artifacts, false);
  CHECK(second.removed.empty());
  CHECK(second.preserved.empty());
  CHECK(second.errors.empty());
  CHECK(r.branches().empty());
  // and a directory outside git has nothing to clean
  temp_dir plain{"crew-worktree-test"};
  auto outside = cleanup_run_worktrees(plain.path, plain.path / ".crew",
                                       run_id, plain.path / "artifacts", false);
  CHECK(outside.errors.empty());
}

TEST_CASE("worktree: cleanup handles a worktree deleted by hand") {
  SKIP_WITHOUT_GIT();
  repo r;
  auto gone = r.prepare("01_explore");
  auto kept = r.prepare("02_build");
  git(kept.path, "commit -q --allow-empty -m 'unmerged work'");
  fs::remove_all(gone.path);
  fs::remove_all(kept.path);
  auto rep = cleanup_run_worktrees(r.root, r.crew_root, run_id, r.artifacts,
                                   false);
  // the pruned worktree's branch goes; one with unmerged commits stays
  CHECK_EQ(rep.removed, std::vector<std::string>{gone.branch});
  CHECK_EQ(rep.preserved, std::vector<std::string>{kept.branch});
  CHECK(rep.errors.empty());
  auto forced = cleanup_run_worktrees(r.root, r.crew_root, run_id, r.artifacts,
                                      true);
  CHECK_EQ(forced.removed, std::vector<std::string>{kept.branch});
  CHECK(fs::exists(r.artifacts / "cleanup" / "02_build.diff"));
  CHECK(r.branches().empty());
}

TEST_CASE("worktree: invalid ids are rejected") {
  SKIP_WITHOUT_GIT();
  repo r;
  CHECK_THROWS_AS(r.prepare("../escape"), input_error);
  CHECK_THROWS_AS(prepare_task_worktree(r.root, r.crew_root, "../x", "t",
                                        worktree_options{}),
                  input_error);
  CHECK_THROWS_AS(
      cleanup_run_worktrees(r.root, r.crew_root, "a/b", r.artifacts, false),
      input_error);
}
