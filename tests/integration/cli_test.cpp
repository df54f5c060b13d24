// Integration tests of the `crew` command line: the real binary, real worker
// processes, real files under a throw-away project.

#include <algorithm>
#include <map>
#include <poll.h>
#include <set>

#include "tests/integration/support.hpp"

using namespace crew::it;

namespace {

std::string run_id_of(const cli_result& r) {
  auto j = r.last_json();
  REQUIRE(j.contains("runId"));
  return j["runId"].get<std::string>();
}

std::map<std::string, int> terminal_events_per_task(const std::vector<json>& evs) {
  static const std::set<std::string> terminal{"task.completed", "task.failed",
                                              "task.skipped", "task.cancelled"};
  std::map<std::string, int> out;
  for (auto& e : evs)
    if (terminal.count(e.value("type", "")) != 0)
      ++out[e.value("taskId", "")];
  return out;
}

bool has_event(const std::vector<json>& evs, const std::string& type,
               const std::string& task = "") {
  return std::any_of(evs.begin(), evs.end(), [&](const json& e) {
    return e.value("type", "") == type
           && (task.empty() || e.value("taskId", "") == task);
  });
}

/// A one-role team `t` whose role `w` uses agent `a` with `command`, and a
/// workflow `wf` with the given steps (all role `w` unless stated).
void simple_project(const project& p, const std::string& command,
                    const std::vector<project::step>& steps, int max_conc = 0) {
  p.agent("a", command);
  p.team("t", {{"w", "a"}}, "wf", max_conc);
  p.workflow("wf", steps);
}

} // namespace

// -- 1 -----------------------------------------------------------------------

TEST_CASE("cli: the demo team completes all three tasks with a contiguous "
          "event log and goal-substituted prompts") {
  project p;
  p.write("src/main.cpp", "int main() {}\n");
  p.write("README.md", "hello\nworld\n");
  auto r = p.crew({"run", "--team", "demo", "--goal", "count the code xyzzy",
                   "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto last = r.last_json();
  CHECK(last["status"] == "completed");
  CHECK(last["tasks"] == json{{"completed", 3}});
  CHECK(last.size() == 4);
  CHECK(last["cpuMs"].get<uint64_t>() > 0); // crew's own CPU, not the workers'
  CHECK(last["cpuMs"].get<uint64_t>() < 60'000);
  auto id = last["runId"].get<std::string>();

  auto evs = p.events(id);
  REQUIRE(!evs.empty());
  for (size_t i = 0; i < evs.size(); ++i)
    CHECK(evs[i]["metadata"]["seq"].get<uint64_t>() == i + 1);
  CHECK(evs.front()["type"] == "run.created");
  CHECK(evs.back()["type"] == "run.completed");

  auto st = p.status(id);
  REQUIRE(st["tasks"].size() == 3);
  auto terminal = terminal_events_per_task(evs);
  for (auto& t : st["tasks"]) {
    auto tid = t["id"].get<std::string>();
    CHECK(t["status"] == "completed");
    CHECK_MESSAGE(terminal[tid] == 1, tid);
  }
  CHECK(terminal.size() == 3);

  auto art = p.artifacts(id);
  size_t results = 0, prompts = 0;
  for (auto& f : fs::directory_iterator(art / "results")) {
    ++results;
    CHECK_MESSAGE(fs::file_size(f.path()) > 0, f.path());
  }
  for (auto& f : fs::directory_iterator(art / "prompts")) {
    ++prompts;
    auto text = read_text(f.path());
    CHECK_MESSAGE(text.find("count the code xyzzy") != std::string::npos, f.path());
    CHECK_MESSAGE(text.find("{goal}") == std::string::npos, f.path());
  }
  CHECK(results == 3);
  CHECK(prompts == 3);
  CHECK(st["manifest"]["status"] == "completed");
}

// -- 2 -----------------------------------------------------------------------

TEST_CASE("cli: a failed task skips only its dependents while the independent "
          "branch completes and the run fails") {
  project p;
  p.agent("failer", "cat >/dev/null; echo boom >&2; exit 3");
  p.agent("ok", "cat >/dev/null; sleep 0.2; echo done");
  p.team("t", {{"bad", "failer"}, {"good", "ok"}}, "wf");
  p.workflow("wf", {{"a", "bad", ""}, {"b", "good", "a"}, {"c", "good", ""}});
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
  REQUIRE_MESSAGE(r.code == 1, r);
  auto last = r.last_json();
  CHECK(last["status"] == "failed");
  auto st = p.status(last["runId"].get<std::string>());
  CHECK(st["manifest"]["status"] == "failed");
  auto a = task_of(st, "a"), b = task_of(st, "b"), c = task_of(st, "c");
  CHECK(a["status"] == "failed");
  CHECK_MESSAGE(a["error"].get<std::string>().find("exit code 3") != std::string::npos,
                a.dump());
  CHECK(b["status"] == "skipped");
  CHECK_MESSAGE(b["error"].get<std::string>().find("'" + a["id"].get<std::string>() + "'")
                  != std::string::npos,
                b.dump());
  CHECK(c["status"] == "completed");
  auto terminal = terminal_events_per_task(p.events(last["runId"]));
  CHECK(terminal == std::map<std::string, int>{{"01_a", 1}, {"02_b", 1}, {"03_c", 1}});
}

// -- 3 -----------------------------------------------------------------------

TEST_CASE("cli: a worker killed by SIGKILL fails its task promptly with the "
          "signal named") {
  project p;
  simple_project(p, "cat >/dev/null; echo $$ > w.pid; exec sleep 30",
                 {{"only", "w", ""}});
  auto t0 = std::chrono::steady_clock::now();
  std::optional<cli_result> r;
  std::thread runner{[&] { r = p.crew({"run", "--team", "t", "--goal", "g", "--json"}); }};
  int pid = 0;
  bool seen = wait_until([&] { return (pid = read_pid(p.path("w.pid"))) > 0; }, 8000ms);
  if (seen) {
    p.track(pid);
    ::kill(pid, SIGKILL);
  }
  runner.join();
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(seen);
  REQUIRE_MESSAGE(r->code == 1, *r);
  CHECK(secs < 10);
  auto st = p.status(run_id_of(*r));
  auto t = task_of(st, "only");
  CHECK(t["status"] == "failed");
  auto err = t["error"].get<std::string>();
  CHECK_MESSAGE(err.find("signal 9") != std::string::npos, err);
  CHECK(st["manifest"]["status"] == "failed");
  CHECK_FALSE(crew::process_alive(pid));
}

// -- 4 -----------------------------------------------------------------------

TEST_CASE("cli: cancelling an async run kills the worker and its grandchild "
          "and cancels queued dependents") {
  project p;
  simple_project(p, "sleep 60 & echo $! > gc.pid; echo $$ > w.pid; wait",
                 {{"first", "w", ""}, {"second", "w", "first"}});
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--async", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto j = r.last_json();
  auto id = j["runId"].get<std::string>();
  int bg = j.value("pid", 0);
  REQUIRE(bg > 0);
  p.track(bg);
  int wpid = 0, gpid = 0;
  bool seen = wait_until(
    [&] {
      wpid = read_pid(p.path("w.pid"));
      gpid = read_pid(p.path("gc.pid"));
      return wpid > 0 && gpid > 0;
    },
    8000ms);
  if (wpid > 0)
    p.track(wpid);
  if (gpid > 0)
    p.track(gpid);
  REQUIRE_MESSAGE(seen, read_text(p.run_dir(id) / "background.log"));
  CHECK(crew::process_alive(wpid));
  CHECK(crew::process_alive(gpid));

  auto c = p.crew({"cancel", id, "--json"});
  REQUIRE_MESSAGE(c.code == 0, c);
  CHECK(c.last_json()["status"] == "cancelled");

  CHECK(wait_until([&] { return !crew::process_alive(wpid); }, 5000ms));
  CHECK(wait_until([&] { return !crew::process_alive(gpid); }, 5000ms));
  CHECK(wait_until([&] { return !fs::exists(p.run_dir(id) / "run.lock"); }, 5000ms));
  CHECK(wait_until([&] { return !crew::process_alive(bg); }, 5000ms));

  auto st = p.status(id);
  CHECK(st["manifest"]["status"] == "cancelled");
  CHECK(task_of(st, "first")["status"] == "cancelled");
  CHECK(task_of(st, "second")["status"] == "cancelled");
  auto terminal = terminal_events_per_task(p.events(id));
  CHECK(terminal == std::map<std::string, int>{{"01_first", 1}, {"02_second", 1}});
}

// -- 5 -----------------------------------------------------------------------

TEST_CASE("cli: SIGINT, SIGHUP or SIGTERM to a foreground run cancels it, stops "
          "the workers and exits 128+N") {
  int sig = 0;
  SUBCASE("SIGINT (Ctrl-C): exit 130") { sig = SIGINT; }
  SUBCASE("SIGHUP (a closed terminal): exit 129") { sig = SIGHUP; }
  SUBCASE("SIGTERM: exit 143") { sig = SIGTERM; }
  project p;
  simple_project(p, "sleep 60 & echo $! > gc.pid; echo $$ > w.pid; wait",
                 {{"first", "w", ""}, {"second", "w", "first"}});
  int wpid = 0, gpid = 0;
  int code = -2;
  std::string out, err;
  {
    spawned_crew proc{p, {"run", "--team", "t", "--goal", "g", "--json"}};
    bool seen = wait_until(
      [&] {
        wpid = read_pid(p.path("w.pid"));
        gpid = read_pid(p.path("gc.pid"));
        return wpid > 0 && gpid > 0;
      },
      8000ms);
    if (wpid > 0)
      p.track(wpid);
    if (gpid > 0)
      p.track(gpid);
    REQUIRE_MESSAGE(seen, proc.err());
    ::kill(proc.pid, sig);
    code = proc.wait(8000ms);
    out = proc.out();
    err = proc.err();
  }
  INFO("stdout: " << out << "\nstderr: " << err);
  CHECK(code == 128 + sig); // -1: crew died of the signal instead
  CHECK(wait_until([&] { return !crew::process_alive(wpid); }, 5000ms));
  CHECK(wait_until([&] { return !crew::process_alive(gpid); }, 5000ms));
  auto ls = lines_of(out);
  REQUIRE(!ls.empty());
  auto last = json::parse(ls.back());
  CHECK(last["status"] == "cancelled");
  auto id = last["runId"].get<std::string>();
  auto st = p.status(id);
  CHECK(st["manifest"]["status"] == "cancelled");
  CHECK(task_of(st, "first")["status"] == "cancelled");
  CHECK(task_of(st, "second")["status"] == "cancelled");
  CHECK_FALSE(fs::exists(p.run_dir(id) / "run.lock"));
}

// -- a closed output pipe ----------------------------------------------------

namespace {

/// The next line read from `fd`, without its newline; empty on end of file
/// or when no whole line arrives within `timeout`.
std::string read_line(int fd, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string line;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    pollfd pfd{fd, POLLIN, 0};
    char c = 0;
    if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0
        || ::read(fd, &c, 1) != 1)
      return {};
    if (c == '\n')
      return line;
    line += c;
  }
}

} // namespace

TEST_CASE("cli: a run whose output pipe its reader closed mid-run goes on, "
          "completes and exits 0") {
  project p;
  // Each worker waits for `go`, written once the reader is gone, and then
  // lasts a second: progress lines fall due while nobody reads them.
  simple_project(p, "cat >/dev/null; echo $$ >> workers.pid; "
                    "while [ ! -f go ]; do sleep 0.05; done; sleep 1; echo ok",
                 {{"a", "w", ""}, {"b", "w", "a"}, {"c", "w", "b"}});
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  std::string first, id;
  int code = -2;
  {
    // `crew run … 2>&1 | head -n1`
    spawned_crew proc{p, {"run", "--team", "t", "--goal", "g"}, fds[1]};
    ::close(fds[1]);
    for (int i = 0; i < 10 && first.rfind("run ", 0) != 0; ++i)
      first = read_line(fds[0], 15000ms); // "run <id> (3 tasks, command)"
    ::close(fds[0]);
    if (first.rfind("run ", 0) == 0)
      id = first.substr(4, first.find(' ', 4) - 4);
    p.write("go", "");
    code = proc.wait(60000ms);
  }
  REQUIRE_MESSAGE(!id.empty(), "first line: " << first);
  CHECK(code == 0); // -1: crew died of SIGPIPE
  auto st = p.status(id);
  CHECK(st["manifest"]["status"] == "completed");
  for (auto& t : {"a", "b", "c"})
    CHECK(task_of(st, t)["status"] == "completed");
  auto workers = lines_of(read_text(p.path("workers.pid")));
  CHECK(workers.size() == 3);
  for (auto& w : workers) {
    p.track(std::stoi(w));
    CHECK(wait_until([&] { return !crew::process_alive(std::stoi(w)); }, 5000ms));
  }
  CHECK_FALSE(fs::exists(p.run_dir(id) / "run.lock"));
  CHECK(p.crew({"verify", id}).code == 0);
}

// -- 6 -----------------------------------------------------------------------

TEST_CASE("cli: resume re-runs only the unfinished tasks and completes the run") {
  project p;
  p.agent("steady", "cat >/dev/null; echo \"$CREW_TASK_ID\" >> invocations.txt; echo ok");
  p.agent("flaky", "cat >/dev/null; echo \"$CREW_TASK_ID\" >> invocations.txt; "
                   "test -f marker || { echo marker missing >&2; exit 1; }; echo ok");
  p.team("t", {{"s", "steady"}, {"f", "flaky"}}, "wf");
  p.workflow("wf", {{"first", "s", ""},
                    {"side", "s", ""},
                    {"flaky", "f", "first"},
                    {"after", "s", "flaky"}});
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
  REQUIRE_MESSAGE(r.code == 1, r);
  auto id = run_id_of(r);
  auto st = p.status(id);
  CHECK(task_of(st, "first")["status"] == "completed");
  CHECK(task_of(st, "side")["status"] == "completed");
  CHECK(task_of(st, "flaky")["status"] == "failed");
  CHECK(task_of(st, "after")["status"] == "skipped");

  p.write("marker", "");
  auto r2 = p.crew({"resume", id, "--json"});
  REQUIRE_MESSAGE(r2.code == 0, r2);
  auto last = r2.last_json();
  CHECK(last["runId"] == id);
  CHECK(last["status"] == "completed");
  CHECK(last["tasks"] == json{{"completed", 4}});

  std::map<std::string, int> calls;
  for (auto& line : lines_of(read_text(p.path("invocations.txt"))))
    ++calls[line];
  CHECK(calls == std::map<std::string, int>{
                   {"01_first", 1}, {"02_side", 1}, {"03_flaky", 2}, {"04_after", 1}});
  auto evs = p.events(id);
  CHECK(has_event(evs, "task.requeued", "03_flaky"));
  CHECK(has_event(evs, "task.requeued", "04_after"));
  CHECK_FALSE(has_event(evs, "task.requeued", "01_first"));
  CHECK_FALSE(has_event(evs, "task.requeued", "02_side"));
  for (size_t i = 0; i < evs.size(); ++i)
    CHECK(evs[i]["metadata"]["seq"].get<uint64_t>() == i + 1);
  auto st2 = p.status(id);
  CHECK(st2["manifest"]["status"] == "completed");
  for (auto& t : st2["tasks"])
    CHECK(t["status"] == "completed");
  // a completed run cannot be resumed again
  auto r3 = p.crew({"resume", id, "--json"});
  CHECK_MESSAGE(r3.code == 2, r3);
}

// -- 7 -----------------------------------------------------------------------

TEST_CASE("cli: at most maxConcurrency workers overlap and dispatch is "
          "continuous") {
  project p;
  simple_project(p,
                 // 01_s1 holds its slot until two other tasks have ended:
                 // with a batch barrier (the next tasks wait for the whole
                 // first pair) it would wait forever and fail.
                 "cat >/dev/null; s=$(date +%s%N); "
                 "if [ \"$CREW_TASK_ID\" = 01_s1 ]; then i=0; "
                 "while [ $(ls done-* 2>/dev/null | wc -l) -lt 2 ]; do "
                 "i=$((i+1)); if [ $i -gt 6000 ]; then "
                 "echo 'no slot was reused while 01_s1 ran' >&2; exit 1; fi; "
                 "sleep 0.01; done; else sleep 0.2; fi; e=$(date +%s%N); "
                 "echo \"$s $e\" > \"times-$CREW_TASK_ID.txt\"; "
                 "touch \"done-$CREW_TASK_ID\"",
                 {{"s1", "w", ""}, {"s2", "w", ""}, {"s3", "w", ""}, {"s4", "w", ""}},
                 2);
  auto plan = p.crew({"plan", "--team", "t", "--json"});
  REQUIRE_MESSAGE(plan.code == 0, plan);
  CHECK(plan.doc()["maxConcurrent"] == 2);
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  std::vector<std::pair<int64_t, int>> edges; // time, +1 start / -1 end
  std::vector<int64_t> starts, ends;
  for (auto id : {"01_s1", "02_s2", "03_s3", "04_s4"}) {
    auto text = read_text(p.path(std::string{"times-"} + id + ".txt"));
    REQUIRE_MESSAGE(!text.empty(), id);
    std::istringstream in{text};
    int64_t s = 0, e = 0;
    in >> s >> e;
    REQUIRE(e > s);
    starts.push_back(s);
    ends.push_back(e);
    edges.emplace_back(s, +1);
    edges.emplace_back(e, -1);
  }
  std::sort(edges.begin(), edges.end()); // ends sort before starts at ties
  int cur = 0, peak = 0;
  for (auto& [t, d] : edges) {
    cur += d;
    peak = std::max(peak, cur);
  }
  CHECK(peak == 2);
  // continuous dispatch: the third and fourth tasks ran while 01_s1 still
  // held its slot, and each started only once a slot was free
  std::sort(starts.begin(), starts.end());
  std::sort(ends.begin(), ends.end());
  CHECK(starts[2] >= ends[0]);
  CHECK(starts[3] >= ends[1]);
}

// -- 8 -----------------------------------------------------------------------

TEST_CASE("cli: bad input exits 2 with a precise message and changes nothing "
          "on disk") {
  project p;
  // a completed run, so that the run directories exist too
  auto ok = p.crew({"run", "--team", "demo", "--goal", "g", "--json"});
  REQUIRE_MESSAGE(ok.code == 0, ok);

  auto expect_bad = [&](const std::vector<std::string>& args,
                        const std::vector<std::string>& needles) {
    auto before = p.snapshot();
    auto r = p.crew(args);
    std::string joined;
    for (auto& a : args)
      joined += a + " ";
    INFO("crew " << joined << "\n" << r);
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    for (auto& n : needles)
      CHECK_MESSAGE(r.err.find(n) != std::string::npos, "stderr lacks '" << n << "'");
    CHECK(p.snapshot() == before);
  };

  SUBCASE("unknown team") {
    expect_bad({"run", "--team", "nope", "--goal", "g"}, {"unknown team", "nope"});
  }
  SUBCASE("unknown workflow") {
    expect_bad({"run", "--team", "demo", "--workflow", "nowf", "--goal", "g"},
               {"unknown workflow", "nowf"});
  }
  SUBCASE("path-like run ids") {
    expect_bad({"status", "../x"}, {"invalid run id", "../x"});
    expect_bad({"status", "/etc"}, {"invalid run id", "/etc"});
    expect_bad({"events", "../x"}, {"invalid run id"});
    expect_bad({"cancel", "../x"}, {"invalid run id"});
    expect_bad({"resume", "../../x"}, {"invalid run id"});
  }
  SUBCASE("unknown run id") {
    expect_bad({"status", "run_nope"}, {"unknown run id", "run_nope"});
    expect_bad({"cancel", "run_nope"}, {"unknown run id", "run_nope"});
    expect_bad({"resume", "run_nope"}, {"unknown run id", "run_nope"});
  }
  SUBCASE("dependency cycle") {
    p.agent("a", "cat");
    p.team("t", {{"w", "a"}}, "cyc");
    p.workflow("cyc", {{"x", "w", "z"}, {"y", "w", "x"}, {"z", "w", "y"}});
    expect_bad({"run", "--team", "t", "--goal", "g"}, {"cyc.workflow.md", "cycle"});
    auto r = p.crew({"run", "--team", "t", "--goal", "g"});
    // x needs z, z needs y, y needs x: any rotation of that cycle
    bool names_cycle = r.err.find("x -> z -> y -> x") != std::string::npos
                       || r.err.find("z -> y -> x -> z") != std::string::npos
                       || r.err.find("y -> x -> z -> y") != std::string::npos;
    CHECK_MESSAGE(names_cycle, r.err);
    expect_bad({"plan", "--team", "t"}, {"cyc.workflow.md", "cycle"});
  }
  SUBCASE("step with an unknown role") {
    p.agent("a", "cat");
    p.team("t", {{"w", "a"}}, "wf");
    p.workflow("wf", {{"x", "w", ""}, {"y", "ghost", "x"}});
    expect_bad({"run", "--team", "t", "--goal", "g"}, {"wf.workflow.md", "ghost"});
  }
  SUBCASE("malformed config.json") {
    p.write(".crew/config.json", "{\"limits\": {");
    expect_bad({"run", "--team", "demo", "--goal", "g"}, {"config.json"});
    expect_bad({"plan", "--team", "demo"}, {"config.json"});
  }
  SUBCASE("maxConcurrentWorkers 0") {
    p.write(".crew/config.json", R"({"limits": {"maxConcurrentWorkers": 0}})");
    expect_bad({"run", "--team", "demo", "--goal", "g"},
               {"config.json", "maxConcurrentWorkers"});
  }
  SUBCASE("unknown config key") {
    p.write(".crew/config.json", R"({"limits": {"maxConcurrentWorkerz": 2}})");
    expect_bad({"run", "--team", "demo", "--goal", "g"},
               {"config.json", "maxConcurrentWorkerz"});
  }
  SUBCASE("--set with a non-integer") {
    expect_bad({"run", "--team", "demo", "--goal", "g", "--set",
                "limits.maxRunMinutes=abc"},
               {"limits.maxRunMinutes", "abc"});
  }
  SUBCASE("empty goal") {
    expect_bad({"run", "--team", "demo", "--goal", ""}, {"--goal"});
  }
}

// -- 9 -----------------------------------------------------------------------

TEST_CASE("cli: events prints one JSON object per line and --since filters by "
          "seq") {
  project p;
  auto r = p.crew({"run", "--team", "demo", "--goal", "g", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto id = run_id_of(r);
  auto all = p.crew({"events", id, "--json"});
  REQUIRE_MESSAGE(all.code == 0, all);
  auto ls = all.out_lines();
  auto on_disk = p.events(id);
  REQUIRE(ls.size() == on_disk.size());
  REQUIRE(ls.size() > 3);
  for (size_t i = 0; i < ls.size(); ++i) {
    auto e = json::parse(ls[i]);
    CHECK(e.is_object());
    CHECK(e["metadata"]["seq"].get<uint64_t>() == i + 1);
    CHECK(e["type"] == on_disk[i]["type"]);
    CHECK(e["runId"] == id);
  }
  auto since = p.crew({"events", id, "--json", "--since", "3"});
  REQUIRE_MESSAGE(since.code == 0, since);
  auto sl = since.out_lines();
  CHECK(sl.size() == ls.size() - 3);
  for (size_t i = 0; i < sl.size(); ++i)
    CHECK(json::parse(sl[i])["metadata"]["seq"].get<uint64_t>() == i + 4);
  // the human format too
  auto human = p.crew({"events", id});
  CHECK(human.code == 0);
  CHECK(human.out_lines().size() == ls.size());
}

// -- 10 ----------------------------------------------------------------------

TEST_CASE("cli: a torn final event line is ignored but a damaged middle line "
          "is reported with file and line") {
  project p;
  auto r = p.crew({"run", "--team", "demo", "--goal", "g", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto id = run_id_of(r);
  auto log = p.events_file(id);
  auto n = p.events(id).size();

  append_text(log, "{\"time\":\"x\",\"ty");
  auto st = p.crew({"status", id});
  CHECK_MESSAGE(st.code == 0, st);
  CHECK(st.out.find("completed") != std::string::npos);
  auto stj = p.crew({"status", id, "--json"});
  CHECK_MESSAGE(stj.code == 0, stj);
  auto ev = p.crew({"events", id, "--json"});
  CHECK_MESSAGE(ev.code == 0, ev);
  CHECK(ev.out_lines().size() == n);
  for (auto& line : ev.out_lines())
    CHECK(json::accept(line));

  auto ls = lines_of(read_text(log));
  REQUIRE(ls.size() == n + 1);
  ls.insert(ls.begin() + 2, "this is not json");
  ls.pop_back(); // drop the torn tail again
  std::string text;
  for (auto& l : ls)
    text += l + "\n";
  write_text(log, text);
  auto bad = p.crew({"status", id});
  INFO(bad);
  CHECK(bad.code == 2);
  CHECK(bad.err.find("events.jsonl") != std::string::npos);
  CHECK(bad.err.find("3") != std::string::npos);
  bool names_line = bad.err.find("line 3") != std::string::npos
                    || bad.err.find(":3") != std::string::npos;
  CHECK_MESSAGE(names_line, bad.err);
  auto bad_events = p.crew({"events", id, "--json"});
  CHECK_MESSAGE(bad_events.code == 2, bad_events);
}

// -- 11 ----------------------------------------------------------------------

TEST_CASE("cli: plan and validate and list describe the demo team and its runs") {
  project p;
  auto plan = p.crew({"plan", "--team", "demo", "--json"});
  REQUIRE_MESSAGE(plan.code == 0, plan);
  auto pj = plan.doc();
  CHECK(pj["team"] == "demo");
  CHECK(pj["workflow"] == "demo");
  REQUIRE(pj["tasks"].size() == 3);
  std::map<std::string, std::vector<std::string>> deps;
  std::map<std::string, std::string> step_to_id;
  for (auto& t : pj["tasks"]) {
    step_to_id[t["stepId"]] = t["id"];
    deps[t["stepId"]] = t["dependsOn"].get<std::vector<std::string>>();
  }
  CHECK(deps["scout"].empty());
  REQUIRE(deps["counter"].size() == 1);
  REQUIRE(deps["reporter"].size() == 1);
  CHECK((deps["counter"][0] == step_to_id["scout"] || deps["counter"][0] == "scout"));
  CHECK((deps["reporter"][0] == step_to_id["counter"]
         || deps["reporter"][0] == "counter"));

  auto v = p.crew({"validate"});
  CHECK_MESSAGE(v.code == 0, v);
  auto vj = p.crew({"validate", "--json"});
  REQUIRE_MESSAGE(vj.code == 0, vj);
  CHECK(vj.doc()["ok"] == true);

  auto r = p.crew({"run", "--team", "demo", "--goal", "list me", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto id = run_id_of(r);
  auto l = p.crew({"list", "--json"});
  REQUIRE_MESSAGE(l.code == 0, l);
  auto lj = l.doc();
  bool demo_team = false, run_listed = false;
  for (auto& t : lj["teams"])
    demo_team = demo_team || t["name"] == "demo";
  for (auto& x : lj["runs"])
    if (x["runId"] == id) {
      run_listed = true;
      CHECK(x["status"] == "completed");
      CHECK(x["goal"] == "list me");
      CHECK(x["team"] == "demo");
    }
  CHECK(demo_team);
  CHECK(run_listed);
}

// -- 12 ----------------------------------------------------------------------

TEST_CASE("cli: loadtest of 2000 diamond tasks holds its invariants") {
  project p;
  auto r = p.crew({"loadtest", "--tasks", "2000", "--shape", "diamond", "--json",
                   "--baseline-messages", "0"},
                  60000);
  REQUIRE_MESSAGE(r.code == 0, r);
  auto j = r.last_json();
  CHECK(j["invariants"]["ok"] == true);
  CHECK(j["invariants"]["every_task_one_terminal_state"] == true);
  CHECK(j["invariants"]["seq_contiguous"] == true);
  CHECK(j["tasks"] == 2000);
  CHECK(j["status"] == "completed");
  // without --keep nothing of the run stays behind
  auto runs = p.root / ".crew" / "state" / "runs";
  size_t left = 0;
  if (fs::exists(runs))
    for ([[maybe_unused]] auto& e : fs::directory_iterator(runs))
      ++left;
  CHECK(left == 0);
}

// -- extras ------------------------------------------------------------------

TEST_CASE("cli: a worker exceeding the agent timeoutMs is killed and its task "
          "fails as timed out") {
  project p;
  p.agent("a", "cat >/dev/null; echo $$ > w.pid; exec sleep 30", "timeoutMs: 300\n");
  p.team("t", {{"w", "a"}}, "wf");
  p.workflow("wf", {{"one", "w", ""}, {"two", "w", "one"}});
  auto t0 = std::chrono::steady_clock::now();
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int wpid = read_pid(p.path("w.pid"));
  p.track(wpid);
  REQUIRE_MESSAGE(r.code == 1, r);
  CHECK(secs < 8);
  auto st = p.status(run_id_of(r));
  auto one = task_of(st, "one");
  CHECK(one["status"] == "failed");
  CHECK_MESSAGE(one["error"].get<std::string>().find("timed out") != std::string::npos,
                one.dump());
  CHECK(task_of(st, "two")["status"] == "skipped");
  REQUIRE(wpid > 0);
  CHECK(wait_until([&] { return !crew::process_alive(wpid); }, 3000ms));
}

TEST_CASE("cli: events --follow on an async run prints every event and stops "
          "when the run ends") {
  project p;
  simple_project(p, "cat >/dev/null; sleep 0.3; echo ok",
                 {{"one", "w", ""}, {"two", "w", "one"}});
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--async", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto j = r.last_json();
  auto id = j["runId"].get<std::string>();
  p.track(j.value("pid", 0));
  auto f = p.crew({"events", id, "--follow", "--json"}, 10000);
  REQUIRE_MESSAGE(f.code == 0, f);
  auto ls = f.out_lines();
  REQUIRE(!ls.empty());
  for (size_t i = 0; i < ls.size(); ++i)
    CHECK(json::parse(ls[i])["metadata"]["seq"].get<uint64_t>() == i + 1);
  CHECK(json::parse(ls.back())["type"] == "run.completed");
  CHECK(ls.size() == p.events(id).size());
  CHECK(wait_until([&] { return !fs::exists(p.run_dir(id) / "run.lock"); }, 5000ms));
}

// -- ownership hand-over and orphans -----------------------------------------

TEST_CASE("cli: a cancel right after run --async is never undone by the "
          "background runner") {
  project p;
  simple_project(p, "cat >/dev/null; sleep 0.5; echo ok", {{"one", "w", ""}});
  for (int i = 0; i < 12; ++i) {
    CAPTURE(i);
    auto r = p.crew({"run", "--team", "t", "--goal", "g", "--async", "--json"});
    REQUIRE_MESSAGE(r.code == 0, r);
    auto j = r.last_json();
    auto id = j["runId"].get<std::string>();
    int bg = j.value("pid", 0);
    p.track(bg);
    if (i % 3 != 0) // vary the timing a little
      std::this_thread::sleep_for(std::chrono::milliseconds{i % 5});
    auto c = p.crew({"cancel", id, "--json"});
    REQUIRE_MESSAGE(c.code == 0, c);
    REQUIRE(wait_until([&] { return !crew::process_alive(bg); }, 5000ms));
    auto st = p.status(id);
    CHECK_MESSAGE(st["manifest"]["status"] == "cancelled",
                  read_text(p.events_file(id)));
    auto evs = p.events(id);
    for (auto& [task, n] : terminal_events_per_task(evs))
      CHECK_MESSAGE(n == 1, task << "\n" << read_text(p.events_file(id)));
    CHECK(evs.back()["type"] == "run.cancelled");
  }
}

TEST_CASE("cli: cancelling a run whose crew process died also stops its "
          "orphaned workers") {
  project p;
  simple_project(p, "cat >/dev/null; echo $$ > w.pid; exec sleep 30",
                 {{"one", "w", ""}});
  int wpid = 0;
  {
    spawned_crew proc{p, {"run", "--team", "t", "--goal", "g", "--json"}};
    REQUIRE(wait_until([&] {
      return (wpid = read_pid(p.path("w.pid"))) > 0 && p.worker_recorded();
    }, 8000ms));
    p.track(wpid);
    ::kill(proc.pid, SIGKILL); // the owner dies abruptly (OOM, crash)
    proc.wait(5000ms);
  }
  auto runs = p.root / ".crew" / "state" / "runs";
  std::string id = fs::directory_iterator(runs)->path().filename().string();
  auto c = p.crew({"cancel", id, "--json"});
  REQUIRE_MESSAGE(c.code == 0, c);
  CHECK(c.last_json()["status"] == "cancelled");
  CHECK_MESSAGE(wait_until([&] { return !crew::process_alive(wpid); }, 3000ms),
                "worker " << wpid << " survives the cancel");
}
