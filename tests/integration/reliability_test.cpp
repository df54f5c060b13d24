// Supervision end to end: heartbeats, retries, deadletters, recovery, verify.

#include <doctest/doctest.h>

#include <csignal>

#include "tests/integration/support.hpp"

using namespace crew::it;
using namespace std::chrono_literals;

namespace {

/// A one-step project whose worker runs `command`, with fast heartbeat
/// thresholds (dead after 300 ms without activity, polled every second).
void heartbeat_project(const project& p, const std::string& command,
                       const std::string& extra_config = "") {
  p.agent("a", command);
  p.team("t", {{"w", "a"}}, "wf");
  p.workflow("wf", {{"only", "w", ""}});
  p.write(".crew/config.json",
          R"({"reliability":{"deadletterThreshold":1,"heartbeat":{"warnMs":100,)"
          R"("staleMs":200,"deadMs":300})"
            + extra_config + R"(},"observability":{"pollIntervalMs":1000}})");
}

size_t count_type(const std::vector<json>& evs, const std::string& type) {
  size_t n = 0;
  for (auto& e : evs)
    n += e["type"] == type ? 1 : 0;
  return n;
}

/// Starts `crew run` and SIGKILLs it once its worker (which writes
/// `w.pid`) is on record: before that, no crew process knows the worker
/// (the window between spawn and the durable task.worker event).
void crash_run_once_worker_recorded(project& p) {
  spawned_crew proc{p, {"run", "--team", "t", "--goal", "g", "--json"}};
  p.track(proc.pid);
  REQUIRE(wait_until([&] {
    return read_pid(p.path("w.pid")) > 0 && p.worker_recorded();
  }, 8000ms));
  ::kill(proc.pid, SIGKILL);
  proc.wait(5000ms);
}

} // namespace

TEST_CASE("reliability: a silent worker is declared dead, killed and deadlettered") {
  project p;
  heartbeat_project(p, "cat >/dev/null; echo $$ > w.pid; exec sleep 30");
  auto t0 = std::chrono::steady_clock::now();
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK_MESSAGE(r.code == 1, r);
  CHECK(secs < 10); // dead threshold + a poll or two, not the 30 s sleep
  auto id = r.last_json()["runId"].get<std::string>();
  auto st = p.status(id);
  auto t = task_of(st, "only");
  CHECK(t["status"] == "failed");
  CHECK(t["error"].get<std::string>().find("heartbeat dead") != std::string::npos);
  auto evs = p.events(id);
  CHECK(count_type(evs, "crew.task.heartbeat_dead") == 1);
  auto dl = p.crew({"deadletter", id, "--json"});
  REQUIRE_MESSAGE(dl.code == 0, dl);
  auto entries = dl.last_json();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0]["reason"] == "heartbeat-dead");
  CHECK(entries[0]["traceId"].get<std::string>().size() == 32);
  auto pid = read_pid(p.path("w.pid"));
  CHECK(wait_until([&] { return pid <= 0 || !crew::process_alive(pid); }, 3000ms));
  // the warning notification reached the daily notification sink
  auto dir = p.root / ".crew" / "state" / "notifications";
  std::string all;
  if (fs::exists(dir))
    for (auto& f : fs::directory_iterator(dir))
      all += read_text(f.path());
  CHECK(all.find("heartbeat dead") != std::string::npos);
  CHECK(p.crew({"verify", id}).code == 0);
}

TEST_CASE("reliability: a worker that keeps printing or computing is never dead") {
  project p;
  // 2.5 s of output every 100 ms, then success; and 2.5 s of silent CPU work.
  heartbeat_project(p, "cat >/dev/null; i=0; while [ $i -lt 25 ]; do echo tick $i; "
                       "sleep 0.1; i=$((i+1)); done");
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
  CHECK_MESSAGE(r.code == 0, r);
  auto id = r.last_json()["runId"].get<std::string>();
  CHECK(count_type(p.events(id), "crew.task.heartbeat_dead") == 0);

  project q;
  heartbeat_project(q, "cat >/dev/null; end=$(( $(date +%s) + 3 )); "
                       "while [ $(date +%s) -lt $end ]; do :; done; echo done");
  auto r2 = q.crew({"run", "--team", "t", "--goal", "g", "--json"});
  CHECK_MESSAGE(r2.code == 0, r2);
  auto id2 = r2.last_json()["runId"].get<std::string>();
  CHECK(count_type(q.events(id2), "crew.task.heartbeat_dead") == 0);
}

TEST_CASE("reliability: autoRetry retries a failing command with backoff and verify agrees") {
  project p;
  // fails twice, then succeeds (counts its attempts in a file)
  p.agent("a", "cat >/dev/null; echo x >> n.txt; [ $(wc -l < n.txt) -ge 3 ]");
  p.team("t", {{"w", "a"}}, "wf");
  p.workflow("wf", {{"only", "w", ""}, {"after", "w", "only"}});
  p.write(".crew/config.json",
          R"({"reliability":{"autoRetry":true,"retryPolicy":{"maxAttempts":5,)"
          R"("backoffMs":100,"jitterRatio":0}}})");
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto id = r.last_json()["runId"].get<std::string>();
  auto evs = p.events(id);
  CHECK(count_type(evs, "crew.task.retry_attempt") == 2);
  std::vector<int> delays;
  for (auto& e : evs)
    if (e["type"] == "crew.task.retry_attempt")
      delays.push_back(e["data"]["delayMs"].get<int>());
  CHECK(delays == std::vector<int>{100, 200});
  // never back from a terminal state on disk: no task.failed before success
  CHECK(count_type(evs, "task.failed") == 0);
  auto t = task_of(p.status(id), "only");
  CHECK(t["attempts"].size() == 3);
  CHECK(t["attempts"][0]["error"].get<std::string>().find("exit code 1") != std::string::npos);
  CHECK(p.crew({"verify", id}).code == 0);
  CHECK(p.crew({"deadletter", id, "--json"}).last_json().empty());
}

TEST_CASE("reliability: exhausted retries deadletter the task and bad input exits 2") {
  project p;
  p.agent("a", "cat >/dev/null; exit 4");
  p.team("t", {{"w", "a"}}, "wf");
  p.workflow("wf", {{"only", "w", ""}});
  p.write(".crew/config.json",
          R"({"reliability":{"autoRetry":true,"retryPolicy":{"maxAttempts":2,"backoffMs":100}}})");
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
  CHECK(r.code == 1);
  auto id = r.last_json()["runId"].get<std::string>();
  auto entries = p.crew({"deadletter", id, "--json"}).last_json();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0]["reason"] == "max-retries");
  CHECK(entries[0]["attempts"] == 2);
  CHECK(p.crew({"verify", id}).code == 0);
  auto before = p.snapshot();
  CHECK(p.crew({"verify", "../x"}).code == 2);
  CHECK(p.crew({"recover", id}).code == 2); // not interrupted
  CHECK(p.crew({"deadletter", "nope"}).code == 2);
  CHECK(p.crew({"deadletter", id, "--task", "only", "--reason", "max-retries"}).code == 2);
  CHECK(p.snapshot() == before);
  p.write(".crew/config.json", R"({"reliability":{"retryPolicy":{"maxAttempts":11}}})");
  auto bad = p.crew({"run", "--team", "t", "--goal", "g"});
  CHECK(bad.code == 2);
  CHECK(bad.err.find("reliability.retryPolicy.maxAttempts") != std::string::npos);
}

TEST_CASE("reliability: autoRecover continues an interrupted run when a node starts") {
  project p;
  p.agent("a", "cat >/dev/null; sleep 0.3; echo ok");
  p.team("t", {{"w", "a"}}, "wf");
  p.workflow("wf", {{"one", "w", ""}, {"two", "w", "one"}});
  std::string id;
  {
    spawned_crew proc{p, {"run", "--team", "t", "--goal", "g", "--json"}};
    p.track(proc.pid);
    auto runs = p.root / ".crew" / "state" / "runs";
    REQUIRE(wait_until([&] {
      if (!fs::exists(runs))
        return false;
      for (auto& e : fs::directory_iterator(runs))
        id = e.path().filename().string();
      return !id.empty() && fs::exists(p.events_file(id))
             && read_text(p.events_file(id)).find("task.started") != std::string::npos;
    }, 8000ms));
    ::kill(proc.pid, SIGKILL);
    proc.wait(5000ms);
  }
  auto plan = p.crew({"recover", "--json"}).last_json();
  REQUIRE(plan.size() == 1);
  CHECK(plan[0]["runId"] == id);
  CHECK(plan[0]["resumableTasks"] == json::array({"01_one"}));
  p.write(".crew/config.json", R"({"reliability":{"autoRecover":true}})");
  auto other = p.crew({"run", "--team", "t", "--goal", "another", "--json"});
  CHECK_MESSAGE(other.code == 0, other);
  CHECK(other.err.find("recovering interrupted run " + id) != std::string::npos);
  CHECK(wait_until([&] { return p.status(id)["manifest"]["status"] == "completed"; },
                   15000ms));
  CHECK(wait_until([&] { return !fs::exists(p.run_dir(id) / "run.lock"); }, 5000ms));
  CHECK(p.crew({"verify", id}).code == 0);
  bool resumed = false;
  for (auto& e : p.events(id))
    resumed = resumed || e["type"] == "crew.run.resumed";
  CHECK(resumed);
}

TEST_CASE("reliability: recover --decline cancels an interrupted run") {
  project p;
  p.agent("a", "cat >/dev/null; echo $$ > w.pid; exec sleep 30");
  p.team("t", {{"w", "a"}}, "wf");
  p.workflow("wf", {{"one", "w", ""}});
  crash_run_once_worker_recorded(p);
  auto worker = read_pid(p.path("w.pid"));
  p.track(worker);
  auto r = p.crew({"recover", "--decline", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r);
  auto row = r.last_json()[0];
  CHECK(row["status"] == "cancelled");
  auto id = row["runId"].get<std::string>();
  auto st = p.status(id);
  CHECK(st["manifest"]["status"] == "cancelled");
  CHECK(task_of(st, "one")["error"] == "interrupted-not-resumed");
  CHECK(wait_until([&] { return !crew::process_alive(worker); }, 3000ms));
  bool declined = false;
  for (auto& e : p.events(id))
    declined = declined || e["type"] == "crew.run.recovery_declined";
  CHECK(declined);
  CHECK(p.crew({"verify", id}).code == 0);
}

TEST_CASE("reliability: SIGTERM to recover --apply cancels the run cleanly and "
          "stops its workers") {
  project p;
  p.agent("a", "cat >/dev/null; echo $$ >> workers.pid; echo $$ > w.pid; "
               "exec sleep 30");
  p.team("t", {{"w", "a"}}, "wf");
  p.workflow("wf", {{"one", "w", ""}, {"two", "w", "one"}});
  crash_run_once_worker_recorded(p);
  p.track(read_pid(p.path("w.pid")));
  auto plan = p.crew({"recover", "--json"}).last_json();
  REQUIRE(plan.size() == 1);
  auto id = plan[0]["runId"].get<std::string>();
  fs::remove(p.path("w.pid"));
  int code = -2;
  {
    spawned_crew proc{p, {"recover", "--apply", id, "--json"}};
    int again = 0; // the recovered attempt's worker
    bool running = wait_until([&] {
      again = read_pid(p.path("w.pid"));
      return again > 0;
    }, 15000ms);
    if (again > 0)
      p.track(again);
    REQUIRE_MESSAGE(running, proc.err());
    ::kill(proc.pid, SIGTERM);
    code = proc.wait(10000ms);
    INFO("stdout: " << proc.out() << "\nstderr: " << proc.err());
    CHECK(code == 143); // -1: crew died of the signal
  }
  auto st = p.status(id);
  CHECK(st["manifest"]["status"] == "cancelled");
  CHECK(task_of(st, "one")["status"] == "cancelled");
  CHECK(task_of(st, "two")["status"] == "cancelled");
  auto workers = lines_of(read_text(p.path("workers.pid")));
  CHECK(workers.size() == 2);
  for (auto& w : workers)
    CHECK(wait_until([&] { return !crew::process_alive(std::stoi(w)); }, 5000ms));
  CHECK(wait_until([&] { return !fs::exists(p.run_dir(id) / "run.lock"); }, 5000ms));
  CHECK(p.crew({"recover", "--json"}).last_json().empty()); // not interrupted
  CHECK(p.crew({"verify", id}).code == 0);
}

TEST_CASE("reliability: deadlettering one running task by hand leaves the others alone") {
  project p;
  p.agent("slow", "cat >/dev/null; echo $$ > a.pid; exec sleep 30");
  p.agent("ok", "cat >/dev/null; sleep 4; echo done");
  p.team("t", {{"s", "slow"}, {"o", "ok"}}, "wf", 2);
  p.workflow("wf", {{"a", "s", ""}, {"b", "o", ""}});
  spawned_crew proc{p, {"run", "--team", "t", "--goal", "g", "--json"}};
  p.track(proc.pid);
  REQUIRE(wait_until([&] { return read_pid(p.path("a.pid")) > 0; }, 8000ms));
  auto runs = p.root / ".crew" / "state" / "runs";
  auto id = fs::directory_iterator(runs)->path().filename().string();
  auto dl = p.crew({"deadletter", id, "--task", "a", "--reason", "manual", "--json"});
  CHECK_MESSAGE(dl.code == 0, dl);
  CHECK(proc.wait(20000ms) == 1); // the run fails because of `a` only
  auto st = p.status(id);
  CHECK(task_of(st, "a")["status"] == "failed");
  CHECK(task_of(st, "a")["error"] == "Deadlettered by hand.");
  CHECK(task_of(st, "b")["status"] == "completed"); // not killed with `a`
  CHECK(p.crew({"verify", id}).code == 0);
}

TEST_CASE("reliability: a cancel request left for an earlier owner does not cancel a resume") {
  project p;
  p.agent("a", "cat >/dev/null; [ -f ok ]");
  p.team("t", {{"w", "a"}}, "wf");
  p.workflow("wf", {{"one", "w", ""}});
  auto first = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
  REQUIRE(first.code == 1);
  auto id = first.last_json()["runId"].get<std::string>();
  // as if `crew cancel` had raced with the first owner's end
  write_text(p.run_dir(id) / "cancel-request.json",
             R"({"requestedAt":"2026-11-26T00:00:00.000Z","pid":1,"owner":999999})");
  p.write("ok", "");
  auto again = p.crew({"resume", id, "--json"});
  CHECK_MESSAGE(again.code == 0, again);
  CHECK(again.last_json()["status"] == "completed");
  CHECK_FALSE(fs::exists(p.run_dir(id) / "cancel-request.json"));
}

TEST_CASE("reliability: verify reports a log damaged in the middle with exit 1") {
  project p;
  p.agent("a", "cat >/dev/null; echo ok");
  p.team("t", {{"w", "a"}}, "wf");
  p.workflow("wf", {{"one", "w", ""}, {"two", "w", "one"}});
  auto r = p.crew({"run", "--team", "t", "--goal", "g", "--json"});
  REQUIRE(r.code == 0);
  auto id = r.last_json()["runId"].get<std::string>();
  auto lines = lines_of(read_text(p.events_file(id)));
  lines[2] = "{not json";
  std::string text;
  for (auto& l : lines)
    text += l + "\n";
  write_text(p.events_file(id), text);
  auto v = p.crew({"verify", id, "--json"});
  CHECK(v.code == 1);
  CHECK(v.out.find("events.jsonl:3") != std::string::npos);
  CHECK(p.crew({"verify", "unknown_run"}).code == 2);
}

TEST_CASE("reliability: a crash in the middle of a cancel is recovered as a "
          "cancel, and a resume afterwards runs the tasks again") {
  project p;
  // The worker ignores SIGTERM: crew sits in the kill grace when it dies.
  p.agent("a", "cat >/dev/null; trap '' TERM; echo $$ > w.pid; "
               "[ -f fast ] && { echo ok; exit 0; }; exec sleep 30");
  p.team("t", {{"w", "a"}}, "wf");
  p.workflow("wf", {{"a", "w", ""}, {"b", "w", "a"}, {"c", "w", "b"}});
  std::string id;
  int worker = 0;
  {
    spawned_crew proc{p, {"run", "--team", "t", "--goal", "g", "--json"}};
    p.track(proc.pid);
    REQUIRE(wait_until([&] {
      return read_pid(p.path("w.pid")) > 0 && p.worker_recorded();
    }, 8000ms));
    worker = read_pid(p.path("w.pid"));
    p.track(worker);
    id = fs::directory_iterator(p.root / ".crew" / "state" / "runs")
           ->path().filename().string();
    ::kill(proc.pid, SIGINT); // Ctrl-C: cancel
    // The intent is in the log before the worker gets its SIGTERM.
    REQUIRE(wait_until([&] {
      return read_text(p.events_file(id)).find("\"crew.run.cancel_requested\"")
             != std::string::npos;
    }, 8000ms));
    ::kill(proc.pid, SIGKILL);
    REQUIRE(proc.wait(5000ms) == -1); // killed inside the 3 s kill grace
  }
  CHECK(crew::process_alive(worker)); // orphaned, still running
  auto r = p.crew({"recover", "--apply", id, "--json"});
  CHECK_MESSAGE(r.code == 1, r); // the run did not complete
  CHECK(r.last_json()[0]["status"] == "cancelled");
  CHECK(wait_until([&] { return !crew::process_alive(worker); }, 3000ms));
  auto st = p.status(id);
  CHECK(st["manifest"]["status"] == "cancelled");
  for (auto step : {"a", "b", "c"})
    CHECK(task_of(st, step)["status"] == "cancelled");
  auto evs = p.events(id);
  CHECK(count_type(evs, "task.started") == 1); // `a` never ran again
  CHECK(count_type(evs, "task.requeued") == 0);
  CHECK(count_type(evs, "crew.run.resumed") == 1);
  CHECK(p.crew({"verify", id}).code == 0);

  // `crew resume` is the user's new decision: it runs what did not complete.
  p.write("fast", "");
  auto again = p.crew({"resume", id, "--json"});
  CHECK_MESSAGE(again.code == 0, again);
  CHECK(again.last_json()["status"] == "completed");
  CHECK(p.crew({"verify", id}).code == 0);
}
