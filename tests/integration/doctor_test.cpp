// Integration tests of `crew doctor`: the real binary against fake pi and
// node executables, broken configs, command-only projects and git leaders.

#include <cstdlib>
#include <optional>
#include <set>
#include <utility>

#include "runtime/workers/pi/pi_invocation.hpp"
#include "tests/integration/support.hpp"

using namespace crew::it;

namespace {

/// Sets (a value) or unsets (nullopt) environment variables of this process
/// for one scope. `project::crew` starts crew with this environment plus
/// the project's HOME, so this is how a test picks crew's PATH and
/// PI_TEAMS_PI_BIN.
class scoped_env {
public:
  using vars = std::vector<std::pair<std::string, std::optional<std::string>>>;

  explicit scoped_env(const vars& changes) {
    for (auto& [key, value] : changes) {
      auto old = std::getenv(key.c_str());
      saved_.emplace_back(key, old != nullptr ? std::optional<std::string>{old}
                                              : std::nullopt);
      set(key, value);
    }
  }

  ~scoped_env() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it)
      set(it->first, it->second);
  }

  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

private:
  static void set(const std::string& key, const std::optional<std::string>& value) {
    if (value)
      ::setenv(key.c_str(), value->c_str(), 1);
    else
      ::unsetenv(key.c_str());
  }

  vars saved_;
};

/// `<base>/bin`, outside the project: a PATH directory for fake executables.
fs::path bin_dir(const project& p) {
  auto dir = p.base / "bin";
  fs::create_directories(dir);
  return dir;
}

/// Writes an executable `/bin/sh` script `<base>/bin/<name>` (only shell
/// builtins work in it: PATH may be just this directory).
fs::path fake_exe(const project& p, const std::string& name,
                  const std::string& body) {
  auto file = bin_dir(p) / name;
  write_text(file, "#!/bin/sh\n" + body + "\n");
  fs::permissions(file, fs::perms::owner_all | fs::perms::group_read
                          | fs::perms::group_exec | fs::perms::others_read
                          | fs::perms::others_exec);
  return file;
}

/// The environment of a hermetic doctor run: no pi mock, no PI_TEAMS_PI_BIN
/// unless given, PATH unchanged unless given.
scoped_env::vars doctor_env(std::optional<std::string> pi_bin,
                            std::optional<std::string> path = std::nullopt) {
  scoped_env::vars v{{"PI_TEAMS_PI_BIN", std::move(pi_bin)},
                     {"PI_TEAMS_MOCK_CHILD_PI", std::nullopt}};
  if (path)
    v.emplace_back("PATH", std::move(path));
  return v;
}

/// The rows of `doc` for `check`.
std::vector<json> rows_of(const json& doc, const std::string& check) {
  std::vector<json> out;
  for (auto& row : doc.at("checks"))
    if (row.at("check") == check)
      out.push_back(row);
  return out;
}

/// The one row of `doc` for `check`.
json row_of(const json& doc, const std::string& check) {
  auto rows = rows_of(doc, check);
  REQUIRE_MESSAGE(rows.size() == 1, "rows '" << check << "' in " << doc.dump(2));
  return rows.front();
}

bool contains(const json& row, const char* key, const std::string& text) {
  return row.at(key).get<std::string>().find(text) != std::string::npos;
}

/// An agent running on pi (no `command:`), with `extra` frontmatter lines.
void pi_agent(const project& p, const std::string& name, const std::string& extra) {
  p.write(".crew/agents/" + name + ".md",
          "---\nname: " + name + "\ndescription: a pi agent\n" + extra
            + "---\n\nYou help.\n");
}

constexpr const char* npm_fix = "npm install -g @mariozechner/pi-coding-agent";

} // namespace

TEST_CASE("doctor: pi missing with pi agents is an error whose fix names the "
          "npm package, and a missing node is a warning") {
  project p;
  scoped_env env{doctor_env(std::nullopt, bin_dir(p).string())};
  auto r = p.crew({"doctor", "--json"});
  CHECK_MESSAGE(r.code == 1, r);
  auto doc = r.doc();
  CHECK(doc["ok"] == false);
  auto pi = row_of(doc, "pi");
  CHECK(pi["status"] == "error");
  CHECK(contains(pi, "detail", "pi not found on PATH"));
  CHECK(contains(pi, "detail", "run on pi"));
  CHECK(contains(pi, "fix", npm_fix));
  CHECK(contains(pi, "fix", "PI_TEAMS_PI_BIN"));
  auto node = row_of(doc, "node");
  CHECK(node["status"] == "warn");
  CHECK(contains(node, "detail", "node not found"));
  CHECK(contains(node, "fix", "20.6"));

  // The same in text: one line per check, the fix indented below it.
  auto t = p.crew({"doctor"});
  CHECK_MESSAGE(t.code == 1, t);
  auto lines = t.out_lines();
  auto at = std::find_if(lines.begin(), lines.end(), [](const std::string& l) {
    return l.rfind("error  pi ", 0) == 0;
  });
  REQUIRE_MESSAGE(at != lines.end(), t);
  REQUIRE(at + 1 != lines.end());
  CHECK((at + 1)->rfind("   ", 0) == 0);
  CHECK((at + 1)->find("fix: install @mariozechner/pi-coding-agent") != std::string::npos);
  CHECK(lines.back() == "1 error(s), 1 warning(s)");
}

TEST_CASE("doctor: a PI_TEAMS_PI_BIN printing its version to stderr is ok, "
          "run with --version and stdin closed") {
  project p;
  // `read` returns at EOF: a pi whose stdin stayed open would hang 20 s.
  // pi creates files in its agent dir even for --version: doctor hands it a
  // scratch one and removes it afterwards.
  auto seen = p.base / "agent-dir.txt";
  auto pi = fake_exe(p, "fake-pi",
                     "[ \"$1\" = --version ] || exit 3\n"
                     "read -r line\n"
                     "echo '{}' > \"$PI_CODING_AGENT_DIR/auth.json\" || exit 4\n"
                     "echo \"$PI_CODING_AGENT_DIR\" > " + shell_quote(seen.string()) + "\n"
                     "echo 0.73.1 >&2");
  scoped_env env{doctor_env(pi.string())};
  auto r = p.crew({"doctor", "--json"});
  CHECK_MESSAGE(r.code == 0, r);
  auto doc = r.doc();
  CHECK(doc["ok"] == true);
  auto row = row_of(doc, "pi");
  CHECK(row["status"] == "ok");
  CHECK(row["detail"] == "pi 0.73.1 (" + pi.string() + ")");
  CHECK(row["fix"] == "");
  auto agent_dir = lines_of(read_text(seen));
  REQUIRE(agent_dir.size() == 1);
  CHECK(agent_dir[0].find(p.root.string()) == std::string::npos);
  CHECK(!fs::exists(agent_dir[0]));
}

TEST_CASE("doctor: a broken pi binary is an error with the failure and the "
          "reinstall fix") {
  project p;
  SUBCASE("exits 1 printing garbage") {
    auto pi = fake_exe(p, "broken-pi",
                       "echo '%%$#@ garbage' \n"
                       "echo 'SyntaxError: Unexpected token ?' >&2\n"
                       "exit 1");
    scoped_env env{doctor_env(pi.string())};
    auto r = p.crew({"doctor", "--json"});
    CHECK_MESSAGE(r.code == 1, r);
    auto row = row_of(r.doc(), "pi");
    CHECK(row["status"] == "error");
    CHECK(contains(row, "detail", "--version` failed: exit code 1"));
    CHECK(contains(row, "detail", "SyntaxError: Unexpected token"));
    CHECK(contains(row, "fix", npm_fix));
    CHECK(contains(row, "fix", "20.6"));
  }
  SUBCASE("crashes") {
    auto pi = fake_exe(p, "crashing-pi", "kill -SEGV $$");
    scoped_env env{doctor_env(pi.string())};
    auto r = p.crew({"doctor", "--json"});
    CHECK_MESSAGE(r.code == 1, r);
    auto row = row_of(r.doc(), "pi");
    CHECK(row["status"] == "error");
    CHECK(contains(row, "detail", "SIGSEGV"));
  }
  SUBCASE("not executable") {
    auto pi = bin_dir(p) / "plain-file";
    write_text(pi, "not a program\n");
    scoped_env env{doctor_env(pi.string())};
    auto r = p.crew({"doctor", "--json"});
    CHECK_MESSAGE(r.code == 1, r);
    auto row = row_of(r.doc(), "pi");
    CHECK(row["status"] == "error");
    CHECK(contains(row, "detail", "is not an executable file"));
    CHECK(contains(row, "fix", npm_fix));
  }
  SUBCASE("exits 0 without a version") {
    auto pi = fake_exe(p, "odd-pi", "echo hello >&2");
    scoped_env env{doctor_env(pi.string())};
    auto r = p.crew({"doctor", "--json"});
    CHECK_MESSAGE(r.code == 0, r);
    auto row = row_of(r.doc(), "pi");
    CHECK(row["status"] == "warn");
    CHECK(contains(row, "detail", "printed no version: hello"));
  }
}

TEST_CASE("doctor: a project of command agents needs no pi: missing pi is a "
          "warning and the exit code 0") {
  project p;
  p.write(".crew/config.json", R"({"agents": {"disableBuiltins": true}})");
  p.agent("a", "cat");
  p.agent("b", "wc -l");
  scoped_env env{doctor_env(std::nullopt, bin_dir(p).string())};
  auto r = p.crew({"doctor", "--json"});
  CHECK_MESSAGE(r.code == 0, r);
  auto doc = r.doc();
  CHECK(doc["ok"] == true);
  auto pi = row_of(doc, "pi");
  CHECK(pi["status"] == "warn");
  CHECK(contains(pi, "detail", "every agent has a `command:`"));
  CHECK(contains(pi, "fix", npm_fix));
  auto node = row_of(doc, "node");
  CHECK(node["status"] == "ok"); // missing, but not needed
  CHECK(contains(node, "detail", "not needed"));
  CHECK(contains(row_of(doc, "agents"), "detail", "0 on pi"));
}

TEST_CASE("doctor: node is checked for >= 20.6 when pi is needed") {
  project p;
  auto pi = fake_exe(p, "pi", "echo 0.73.1 >&2");
  scoped_env env{doctor_env(std::nullopt, bin_dir(p).string())};
  SUBCASE("too old") {
    fake_exe(p, "node", "echo v20.5.1");
    auto r = p.crew({"doctor", "--json"});
    CHECK_MESSAGE(r.code == 0, r);
    auto doc = r.doc();
    CHECK(row_of(doc, "pi")["status"] == "ok"); // `pi` found on PATH
    auto node = row_of(doc, "node");
    CHECK(node["status"] == "warn");
    CHECK(contains(node, "detail", "node 20.5.1"));
    CHECK(contains(node, "detail", "older than 20.6"));
  }
  SUBCASE("recent enough") {
    fake_exe(p, "node", "echo v22.3.0");
    auto r = p.crew({"doctor", "--json"});
    CHECK_MESSAGE(r.code == 0, r);
    auto node = row_of(r.doc(), "node");
    CHECK(node["status"] == "ok");
    CHECK(contains(node, "detail", "node 22.3.0"));
  }
}

TEST_CASE("doctor: a broken config is an error row naming the file and key, "
          "and the other checks still run") {
  project p;
  p.write(".crew/config.json", R"({"limits": {"maxConcurrentWorkers": "many"}})");
  auto pi = fake_exe(p, "fake-pi", "echo 0.73.1 >&2");
  scoped_env env{doctor_env(pi.string())};
  auto r = p.crew({"doctor", "--json"});
  CHECK_MESSAGE(r.code == 1, r);
  auto doc = r.doc();
  CHECK(doc["ok"] == false);
  auto config = row_of(doc, "config");
  CHECK(config["status"] == "error");
  CHECK(contains(config, "detail", "config.json"));
  CHECK(contains(config, "detail", "limits.maxConcurrentWorkers"));
  CHECK(!config["fix"].get<std::string>().empty());
  CHECK(row_of(doc, "pi")["status"] == "ok");
  CHECK(row_of(doc, "state-root")["status"] == "ok");
  CHECK(!rows_of(doc, "agents").empty()); // the agents still load
}

TEST_CASE("doctor: an agent on pi without a model is a warning naming it") {
  project p;
  pi_agent(p, "nomodel", "");
  pi_agent(p, "withfallback", "fallbackModels: a/b, c/d\n");
  auto pi = fake_exe(p, "fake-pi", "echo 0.73.1 >&2");
  scoped_env env{doctor_env(pi.string())};
  auto r = p.crew({"doctor", "--json"});
  CHECK_MESSAGE(r.code == 0, r);
  auto rows = rows_of(r.doc(), "agents");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["status"] == "warn");
  CHECK(rows[0]["detail"]
        == "agent nomodel has no model: pi will use its default model");
  CHECK(contains(rows[0], "fix", "set `model:`"));
  CHECK(contains(rows[0], "fix", "nomodel.md"));
}

TEST_CASE("doctor: --json is one object {ok, checks: [{check, status, detail, "
          "fix}]} and the text has one line per check") {
  project p;
  auto pi = fake_exe(p, "fake-pi", "echo 0.73.1 >&2");
  scoped_env env{doctor_env(pi.string())};
  auto r = p.crew({"doctor", "--json"});
  CHECK_MESSAGE(r.code == 0, r);
  auto doc = r.doc();
  REQUIRE(doc.is_object());
  CHECK(doc.size() == 2);
  REQUIRE(doc["ok"].is_boolean());
  REQUIRE(doc["checks"].is_array());
  std::set<std::string> checks;
  bool any_error = false;
  for (auto& row : doc["checks"]) {
    REQUIRE(row.is_object());
    CHECK(row.size() == 4);
    for (auto key : {"check", "status", "detail", "fix"})
      CHECK_MESSAGE(row[key].is_string(), key);
    auto status = row["status"].get<std::string>();
    CHECK((status == "ok" || status == "warn" || status == "error"));
    any_error = any_error || status == "error";
    checks.insert(row["check"].get<std::string>());
  }
  CHECK(doc["ok"] == !any_error);
  for (auto check : {"config", "agents", "pi", "node", "state-root"})
    CHECK_MESSAGE(checks.count(check) == 1, check);
  CHECK(checks.count("worktree") == 0); // not configured
  CHECK(checks.count("mock") == 0);

  auto t = p.crew({"doctor"});
  CHECK_MESSAGE(t.code == 0, t);
  size_t check_lines = 0;
  for (auto& line : t.out_lines())
    if (line.rfind("ok ", 0) == 0 || line.rfind("warn ", 0) == 0
        || line.rfind("error ", 0) == 0)
      ++check_lines;
  CHECK(check_lines == doc["checks"].size());
}

TEST_CASE("doctor: PI_TEAMS_MOCK_CHILD_PI is a warning, and pi is then not "
          "needed") {
  project p;
  scoped_env env{doctor_env(std::nullopt, bin_dir(p).string())};
  scoped_env mock{{{"PI_TEAMS_MOCK_CHILD_PI", "success"}}};
  auto r = p.crew({"doctor", "--json"});
  CHECK_MESSAGE(r.code == 0, r);
  auto doc = r.doc();
  auto row = row_of(doc, "mock");
  CHECK(row["status"] == "warn");
  CHECK(contains(row, "detail", "PI_TEAMS_MOCK_CHILD_PI=success"));
  CHECK(contains(row, "fix", "unset PI_TEAMS_MOCK_CHILD_PI"));
  CHECK(row_of(doc, "pi")["status"] == "warn");
}

TEST_CASE("doctor: workspaceMode worktree needs git and a clean leader") {
  project p;
  if (crew::find_on_path("git", std::getenv("PATH") ? std::getenv("PATH") : "")
        .empty()) {
    MESSAGE("git not installed: skipped");
    return;
  }
  auto pi = fake_exe(p, "fake-pi", "echo 0.73.1 >&2");
  scoped_env env{doctor_env(pi.string())};
  p.write(".crew/config.json", R"({"workspaceMode": "worktree"})");
  auto doctor = [&] {
    auto r = p.crew({"doctor", "--json"});
    INFO(r);
    return row_of(r.doc(), "worktree");
  };

  auto row = doctor(); // not a repository yet
  CHECK(row["status"] == "error");
  CHECK(contains(row, "detail", "git status` failed"));
  CHECK(contains(row, "fix", "workspaceMode: single"));

  p.sh("git init -q .");
  row = doctor(); // a repository without a commit
  CHECK(row["status"] == "error");
  CHECK(contains(row, "detail", "no commit yet"));

  p.write("src/a.txt", "a\n");
  p.sh("git add src && git -c user.name=t -c user.email=t@t commit -q -m init");
  row = doctor(); // clean; .crew/ (untracked state) does not count
  CHECK_MESSAGE(row["status"] == "ok", row.dump());
  CHECK(contains(row, "detail", "is clean"));

  auto before = p.snapshot(); // git status must not touch .git either
  CHECK(p.crew({"doctor", "--json"}).code == 0);
  CHECK(p.snapshot() == before);

  p.write("src/a.txt", "changed\n");
  row = doctor();
  CHECK(row["status"] == "error");
  CHECK(contains(row, "detail", "1 uncommitted change(s)"));
  CHECK(contains(row, "fix", "requireCleanWorktreeLeader"));

  p.write(".crew/config.json",
          R"({"workspaceMode": "worktree", "requireCleanWorktreeLeader": false})");
  row = doctor();
  CHECK(row["status"] == "ok");
  CHECK(contains(row, "detail", "allowed"));
}

TEST_CASE("doctor: writes nothing, not even an absent state root") {
  project p;
  auto pi = fake_exe(p, "fake-pi", "echo 0.73.1 >&2");
  scoped_env env{doctor_env(pi.string())};
  SUBCASE("a project with config, agents and runs") {
    p.write(".crew/config.json", R"({"limits": {"maxConcurrentWorkers": 2}})");
    p.agent("a", "cat");
    p.team("t", {{"w", "a"}}, "wf");
    p.workflow("wf", {{"s1", "w", ""}});
    auto run = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
    REQUIRE_MESSAGE(run.code == 0, run);
    auto before = p.snapshot();
    CHECK(p.crew({"doctor"}).code == 0);
    CHECK(p.crew({"doctor", "--json"}).code == 0);
    CHECK(p.snapshot() == before);
  }
  SUBCASE("no .crew yet") {
    fs::remove_all(p.root / ".crew");
    p.write("package.json", "{}\n"); // keeps the project root here
    auto before = p.snapshot();
    auto r = p.crew({"doctor", "--json"});
    CHECK_MESSAGE(r.code == 0, r);
    auto row = row_of(r.doc(), "state-root");
    CHECK(row["status"] == "ok");
    CHECK(contains(row, "detail", "does not exist yet"));
    CHECK(!fs::exists(p.root / ".crew"));
    CHECK(p.snapshot() == before);
  }
}

TEST_CASE("doctor: bad usage exits 2 with nothing on stdout") {
  project p;
  auto r = p.crew({"doctor", "--bogus"});
  CHECK_MESSAGE(r.code == 2, r);
  CHECK(r.out.empty());
  CHECK(!r.err.empty());
}
