// workspaceMode worktree through `crew run` and `crew cleanup`: every task in
// its own git worktree and branch, diffs recorded, a dirty leader refused
// before anything is written, dirty worktrees preserved by cleanup.

#include <doctest/doctest.h>

#include "tests/integration/support.hpp"

using namespace crew::it;

namespace {

bool have_git() {
  return std::system("git --version >/dev/null 2>&1") == 0;
}

/// A git repository with one commit and a two-step worktree team whose
/// agents print their cwd and change a tracked file.
void worktree_project(project& p) {
  p.write("notes.txt", "base\n");
  p.sh("git init -q . && git add notes.txt && "
       "git -c user.name=t -c user.email=t@t commit -q -m init");
  p.agent("writer", "pwd; echo \"by $CREW_TASK_ID\" >> notes.txt");
  p.write(".crew/teams/wt.team.md",
          "---\nname: wt\ndescription: worktree team\ndefaultWorkflow: wt\n"
          "workspaceMode: worktree\n---\n\nRoles:\n\n- w: agent=writer writes\n");
  p.workflow("wt", {{"first", "w", ""}, {"second", "w", "first"}});
}

} // namespace

TEST_CASE("worktree: each task runs in its own worktree and branch, the "
          "leader is untouched and the diffs are recorded") {
  if (!have_git()) {
    MESSAGE("git not found: worktree run test skipped");
    return;
  }
  project p;
  worktree_project(p);
  auto r = p.crew({"run", "--team", "wt", "--goal", "g", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto id = r.last_json()["runId"].get<std::string>();
  auto st = p.status(id);
  CHECK(st["manifest"]["workspaceMode"] == "worktree");
  for (auto& t : st["tasks"]) {
    auto task = t["id"].get<std::string>();
    auto wt = p.root / ".crew" / "worktrees" / id / task;
    auto result = read_text(p.root / ".crew" / "artifacts" / id / "results"
                            / (task + ".txt"));
    CHECK_MESSAGE(result.find(wt.string()) != std::string::npos, result);
    CHECK(read_text(wt / "notes.txt") == "base\nby " + task + "\n");
    auto diff = read_text(p.root / ".crew" / "artifacts" / id / "diffs"
                          / (task + ".diff"));
    CHECK(diff.find("+by " + task) != std::string::npos);
  }
  CHECK(read_text(p.root / "notes.txt") == "base\n"); // the leader
  auto branches = p.sh("git branch --list 'pi-crew/*'");
  CHECK(branches.find("pi-crew/" + id) != std::string::npos);

  // the worktrees hold changes: cleanup keeps them, --force removes them
  auto kept = p.crew({"cleanup", id, "--json"});
  REQUIRE_MESSAGE(kept.code == 0, kept);
  CHECK(kept.last_json()["preserved"].size() == 2);
  CHECK(fs::exists(p.root / ".crew" / "worktrees" / id));
  auto forced = p.crew({"cleanup", id, "--force", "--json"});
  REQUIRE_MESSAGE(forced.code == 0, forced);
  CHECK(forced.last_json()["removed"].size() == 2);
  CHECK_FALSE(fs::exists(p.root / ".crew" / "worktrees" / id));
  CHECK(p.sh("git branch --list 'pi-crew/*'").empty());
  CHECK_FALSE(fs::is_empty(p.root / ".crew" / "artifacts" / id / "cleanup"));
  CHECK(p.crew({"cleanup", id}).code == 0); // idempotent
}

TEST_CASE("worktree: a dirty leader is refused before anything is written") {
  if (!have_git()) {
    MESSAGE("git not found: worktree run test skipped");
    return;
  }
  project p;
  worktree_project(p);
  p.write("notes.txt", "edited\n");
  auto before = p.snapshot();
  auto r = p.crew({"run", "--team", "wt", "--goal", "g"});
  CHECK(r.code == 2);
  CHECK_MESSAGE(r.err.find("uncommitted changes") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("notes.txt") != std::string::npos, r.err);
  CHECK(p.snapshot() == before);
  // allowed when configured
  p.write(".crew/config.json", R"({"requireCleanWorktreeLeader": false})");
  auto ok = p.crew({"run", "--team", "wt", "--goal", "g"});
  CHECK_MESSAGE(ok.code == 0, ok);
}

TEST_CASE("worktree: cleanup of an unknown run is bad input") {
  project p;
  auto r = p.crew({"cleanup", "team_20990101000000_deadbeef"});
  CHECK(r.code == 2);
  CHECK(r.err.find("team_20990101000000_deadbeef") != std::string::npos);
}
