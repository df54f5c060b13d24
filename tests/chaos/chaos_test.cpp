// Crash recovery under kill -9: the crew process dies at random moments of
// runs with command workers and with sim workers at scale; `crew recover
// --apply` continues each run; `crew verify` must pass and no task may end
// twice. CREW_CHAOS_ROUNDS sets the rounds (the `chaos` ctest label runs
// many; the default suite a few).

#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <random>

#include "tests/integration/support.hpp"

using namespace crew::it;
using namespace std::chrono_literals;

namespace {

int rounds(int fallback) {
  if (auto v = std::getenv("CREW_CHAOS_ROUNDS"))
    return std::max(1, std::atoi(v));
  return fallback;
}

/// The id of the project's one run; "" when the kill landed before crew had
/// created anything (a valid outcome: there is nothing to recover).
std::string only_run(const project& p) {
  auto runs = p.root / ".crew" / "state" / "runs";
  std::string id;
  std::error_code ec;
  for (fs::directory_iterator it{runs, ec}, end; !ec && it != end; it.increment(ec))
    id = it->path().filename().string();
  return id;
}

/// Recovers `id` if it was interrupted, then checks the invariants.
void recover_and_verify(project& p, const std::string& id, bool torn_tail) {
  auto plan = p.crew({"recover", "--json"});
  REQUIRE_MESSAGE(plan.code == 0, plan);
  auto plans = plan.last_json();
  bool interrupted = false;
  for (auto& row : plans)
    interrupted = interrupted || row["runId"] == id;
  if (interrupted) {
    if (torn_tail) // a write cut in half by the crash
      append_text(p.events_file(id), R"({"time":"2026-11-26T00:00:00.000Z","ty)");
    auto applied = p.crew({"recover", "--apply", id, "--json"}, 120000);
    REQUIRE_MESSAGE(applied.code == 0, applied);
    CHECK(applied.last_json()[0]["status"] == "completed");
    auto evs = p.events(id);
    bool resumed = false;
    for (auto& e : evs)
      resumed = resumed || e["type"] == "crew.run.resumed";
    CHECK(resumed);
  }
  auto v = p.crew({"verify", id, "--json"});
  CHECK_MESSAGE(v.code == 0, v);
  auto st = p.status(id);
  CHECK(st["manifest"]["status"] == "completed");
  for (auto& t : st["tasks"])
    CHECK_MESSAGE(t["status"] == "completed", t["id"]);
  // one terminal event per task (since its last requeue): no task completed twice
  std::map<std::string, int> terminal;
  for (auto& e : p.events(id)) {
    auto type = e["type"].get<std::string>();
    if (type == "task.requeued")
      terminal[e["taskId"]] = 0;
    else if (type == "task.completed" || type == "task.failed"
             || type == "task.skipped" || type == "task.cancelled")
      ++terminal[e["taskId"]];
  }
  for (auto& [task, n] : terminal)
    CHECK_MESSAGE(n == 1, task);
}

} // namespace

TEST_CASE("chaos: kill -9 of crew with command workers, then recover and verify") {
  std::mt19937 rng{42};
  for (int round = 0, n = rounds(3); round < n; ++round) {
    CAPTURE(round);
    project p;
    p.agent("a", "cat >/dev/null; echo $CREW_TASK_ID >> runs.txt; sleep 0.1; echo ok");
    p.team("t", {{"w", "a"}}, "wf", 2);
    p.workflow("wf", {{"a", "w", ""}, {"b", "w", "a"}, {"c", "w", "a"},
                      {"d", "w", "b,c"}, {"e", "w", ""}, {"f", "w", "e"}});
    {
      spawned_crew proc{p, {"run", "--team", "t", "--goal", "g", "--json"}};
      p.track(proc.pid);
      std::this_thread::sleep_for(
        std::chrono::milliseconds{std::uniform_int_distribution<int>{30, 450}(rng)});
      ::kill(proc.pid, SIGKILL);
      proc.wait(5000ms);
    }
    auto id = only_run(p);
    if (id.empty())
      continue; // killed before the run existed: nothing was lost
    if (!fs::exists(p.run_dir(id) / "manifest.json")) {
      // Killed inside run creation, before manifest.json: the "ghost run" of
      // the correctness review §10, not fixed yet (issue 11 item 8). Counted,
      // not hidden: it is reported here until creation is atomic.
      MESSAGE("round " << round << ": killed during creation, ghost run " << id
                       << " (correctness review §10, open)");
      continue;
    }
    recover_and_verify(p, id, round % 2 == 1);
  }
}

TEST_CASE("chaos: kill -9 of crew running sim workers at scale, then recover and verify") {
  std::mt19937 rng{7};
  for (int round = 0, n = rounds(2); round < n; ++round) {
    CAPTURE(round);
    project p;
    {
      spawned_crew proc{p, {"loadtest", "--tasks", "20000", "--latency-ms", "2",
                            "--concurrency", "64", "--shape", "random", "--keep",
                            "--baseline-messages", "0", "--json"}};
      p.track(proc.pid);
      std::this_thread::sleep_for(
        std::chrono::milliseconds{std::uniform_int_distribution<int>{100, 600}(rng)});
      ::kill(proc.pid, SIGKILL);
      proc.wait(5000ms);
    }
    auto id = only_run(p);
    if (id.empty())
      continue; // killed before the run existed: nothing was lost
    if (!fs::exists(p.run_dir(id) / "manifest.json")) {
      // Killed inside run creation, before manifest.json: the "ghost run" of
      // the correctness review §10, not fixed yet (issue 11 item 8). Counted,
      // not hidden: it is reported here until creation is atomic.
      MESSAGE("round " << round << ": killed during creation, ghost run " << id
                       << " (correctness review §10, open)");
      continue;
    }
    recover_and_verify(p, id, round % 2 == 0);
  }
}

TEST_CASE("chaos: kill -9 after a checkpoint, with retries in flight: recovery "
          "replays only the tail and verify passes") {
  std::mt19937 rng{11};
  for (int round = 0, n = rounds(1); round < n; ++round) {
    CAPTURE(round);
    project p;
    std::string id;
    {
      spawned_crew proc{p, {"loadtest", "--tasks", "20000", "--latency-ms", "10",
                            "--concurrency", "64", "--shape", "diamond",
                            "--fail-rate", "0.1", "--retry-attempts", "8",
                            "--backoff-ms", "20", "--keep",
                            "--baseline-messages", "0", "--json"}};
      p.track(proc.pid);
      REQUIRE(wait_until([&] {
        auto runs = p.root / ".crew" / "state" / "runs";
        if (!fs::exists(runs))
          return false;
        id = only_run(p);
        return !id.empty() && fs::exists(p.run_dir(id) / "checkpoint.bin");
      }, 20000ms));
      std::this_thread::sleep_for(
        std::chrono::milliseconds{std::uniform_int_distribution<int>{0, 900}(rng)});
      ::kill(proc.pid, SIGKILL);
      proc.wait(5000ms);
    }
    recover_and_verify(p, id, round % 2 == 1);
    uint64_t checkpoint_seq = 0, recovered_from = 0;
    for (auto& e : p.events(id))
      if (e["type"] == "crew.run.resumed") {
        checkpoint_seq = e["data"]["checkpointSeq"].get<uint64_t>();
        recovered_from = e["data"]["recoveredFromSeq"].get<uint64_t>();
      }
    CHECK(checkpoint_seq > 0);               // the checkpoint bounded the replay
    CHECK(checkpoint_seq <= recovered_from); // and was never ahead of the log
  }
}

TEST_CASE("chaos: kill -9 while an adaptive plan runs: recovery rebuilds the "
          "planner's tasks from the log, with or without the rewritten plan") {
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    project p;
    p.write("plan.txt",
            "ADAPTIVE_PLAN_JSON_START\n{\"phases\": ["
            "{\"name\": \"a\", \"tasks\": [{\"role\": \"executor\", \"task\": \"one\"},"
            "{\"role\": \"executor\", \"task\": \"two\"}]},"
            "{\"name\": \"b\", \"tasks\": [{\"role\": \"executor\", \"task\": \"three\"}]}"
            "]}\nADAPTIVE_PLAN_JSON_END\n");
    p.agent("plan-printer", "cat >/dev/null; cat plan.txt");
    p.agent("doer", "cat >/dev/null; sleep 0.3; echo ok");
    p.team("implementation", {{"planner", "plan-printer"}, {"executor", "doer"}},
           "implementation", 2);
    p.workflow("implementation", {{"assess", "planner", ""}});
    std::string id;
    {
      spawned_crew proc{p, {"run", "--team", "implementation", "--goal", "g"}};
      p.track(proc.pid);
      REQUIRE(wait_until([&] {
        auto runs = p.root / ".crew" / "state" / "runs";
        if (!fs::exists(runs) || (id = only_run(p)).empty()
            || !fs::exists(p.events_file(id)))
          return false;
        for (auto& line : lines_of(read_text(p.events_file(id))))
          if (line.find("\"task.worker\"") != std::string::npos
              && line.find("\"adaptive-0") != std::string::npos)
            return true;
        return false;
      }, 20000ms));
      ::kill(proc.pid, SIGKILL);
      proc.wait(5000ms);
    }
    if (round == 1) {
      // As if crew died between the durable adaptive.plan_injected event and
      // the plan.json rewrite: only the log knows the planner's tasks.
      auto plan = json::parse(read_text(p.run_dir(id) / "plan.json"));
      json original = json::array();
      for (auto& t : plan)
        if (!t["stepId"].get<std::string>().starts_with("adaptive-"))
          original.push_back(t);
      REQUIRE(original.size() == 1);
      write_text(p.run_dir(id) / "plan.json", original.dump(2) + "\n");
      fs::remove(p.run_dir(id) / "plan.bin");
    }
    recover_and_verify(p, id, false);
    auto st = p.status(id);
    CHECK(st["tasks"].size() == 4);
    CHECK(json::parse(read_text(p.run_dir(id) / "plan.json")).size() == 4);
    int injected = 0;
    for (auto& e : p.events(id))
      injected += e["type"] == "adaptive.plan_injected" ? 1 : 0;
    CHECK(injected == 1); // recovery did not inject the plan again
  }
}
