// Worker text never breaks the log (security review M7): whatever bytes a
// worker prints, its run's events.jsonl stays readable, and text that is not
// UTF-8 in crew's own input is refused before a run exists.

#include "tests/integration/support.hpp"

#include "store/utf8.hpp"

using namespace crew::it;

namespace {

const std::string euro = "\xE2\x82\xAC";

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i)
    out += s;
  return out;
}

/// The one `task.failed` event of a run.
json failed_event(const project& p, const std::string& id) {
  for (auto& e : p.events(id)) // json::parse refuses ill-formed UTF-8 too
    if (e.value("type", "") == "task.failed")
      return e;
  FAIL("no task.failed event");
  return {};
}

/// Every command that reads the run succeeds.
void check_readable(const project& p, const std::string& id) {
  auto events = p.crew({"events", id});
  CHECK_MESSAGE(events.code == 0, events);
  CHECK(crew::is_valid_utf8(events.out));
  auto verify = p.crew({"verify", id});
  CHECK_MESSAGE(verify.code == 0, verify);
  auto status = p.status(id);
  CHECK(status["manifest"]["status"] == "failed");
}

/// Runs a one-step workflow whose worker runs `command` and fails; returns
/// the run id once every command that reads the run has succeeded.
std::string failed_run(const project& p, const std::string& command) {
  p.agent("failer", command);
  p.team("t", {{"w", "failer"}}, "wf");
  p.workflow("wf", {{"a", "w", ""}});
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
  REQUIRE_MESSAGE(r.code == 1, r);
  auto id = r.last_json()["runId"].get<std::string>();
  check_readable(p, id);
  return id;
}

/// The names of the run directories.
std::vector<std::string> runs(const project& p) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(p.root / ".crew" / "state" / "runs", ec))
    out.push_back(e.path().filename().string());
  return out;
}

} // namespace

TEST_CASE("utf8: a failing worker with 2 KiB of € on stderr leaves a readable "
          "log") {
  // 700 × € is 2100 bytes: the 2 KiB stderr tail used to start inside a
  // character and the task.failed line made the whole log unreadable.
  project p;
  auto id = failed_run(p, "cat >/dev/null; for i in $(seq 700); do printf '"
                            + euro + "' >&2; done; exit 1");
  auto message = failed_event(p, id)["message"].get<std::string>();
  // whole characters only: 682 € (2046 bytes), nothing replaced
  CHECK_EQ(message, "exit code 1: " + repeat(euro, 682));
  auto task = task_of(p.status(id), "a");
  CHECK_EQ(task["error"].get<std::string>(), message);
}

TEST_CASE("utf8: a failing worker's Latin-1 stderr becomes U+FFFD in the log") {
  project p;
  auto id = failed_run(p, "cat >/dev/null; printf 'caf\\351 \\377\\376\\n' >&2; exit 3");
  CHECK_EQ(failed_event(p, id)["message"].get<std::string>(),
           "exit code 3: caf\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("utf8: a goal that is not UTF-8 exits 2 and creates no run") {
  project p;
  auto before = p.snapshot();
  auto r = p.crew({"run", "--team", "demo", "--goal", "bad \xFF\xFE goal"});
  INFO(r);
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK_NE(r.err.find("--goal"), std::string::npos);
  CHECK_NE(r.err.find("UTF-8"), std::string::npos);
  CHECK(runs(p).empty());
  CHECK(p.snapshot() == before);
}

TEST_CASE("utf8: a workflow step whose text is not UTF-8 is an input error "
          "naming the file and line") {
  project p;
  p.agent("a", "cat");
  p.team("t", {{"w", "a"}}, "wf");
  p.write(".crew/workflows/wf.workflow.md",
          "---\nname: wf\ndescription: d\n---\n" // lines 1-4
          "\n## ok\nrole: w\n\nFine {goal}\n"    // lines 5-9
          "\n## bad\nrole: w\n\n"                // lines 10-13
          "First line\nsecond caf\xE9 line\n");  // lines 14-15
  auto before = p.snapshot();
  auto expect_bad = [&](const std::vector<std::string>& args) {
    auto r = p.crew(args);
    INFO(args.front() << ": " << r);
    CHECK(r.code == 2);
    CHECK_NE(r.err.find("wf.workflow.md:15: step 'bad': task is not valid UTF-8"),
             std::string::npos);
    CHECK(crew::is_valid_utf8(r.err));
  };
  expect_bad({"run", "--team", "t", "--goal", "g"});
  expect_bad({"plan", "--team", "t"});
  expect_bad({"validate"});
  CHECK(runs(p).empty());
  CHECK(p.snapshot() == before);
}
