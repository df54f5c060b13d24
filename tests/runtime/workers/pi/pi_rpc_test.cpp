#include "runtime/workers/pi/pi_rpc.hpp"

#include "runtime/workers/pi/model_routing.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include "tests/support/pi_helpers.hpp"

using namespace crew;
using crew::test::lines_of;
using crew::test::fake_pi_tree;
using crew::test::map_env;
using crew::test::slurp;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using strings = std::vector<std::string>;

// A fake `pi --mode rpc`. It records its argv, cwd and system prompt under
// $FAKE_RPC_DIR (per pid) and every command it reads in commands.jsonl, then
// speaks pi's protocol: responses carry the command's id, events do not.
// - new_session resets the model to --model; set_model knows fake/good,
//   fake/bad and fake/second; get_available_models lists them;
// - a prompt answers "answer from <model>: <message>", or with stopReason
//   error "429 rate limit exceeded" when the model is bad;
// - HANG in a prompt: silence until abort (then stopReason aborted);
//   DEAF: silence, and abort is ignored; CRASH: stderr, then exit 3;
//   LINGER: the final answer, but no agent_end until abort (then an aborted
//   turn); LINGER with DEAF: the answer, and abort is ignored.
constexpr const char* fake_rpc_script = R"FAKE(#!/usr/bin/env python3
import json, os, sys
d = os.environ["FAKE_RPC_DIR"]
pid = os.getpid()
args = sys.argv[1:]
def arg(name):
    for i, a in enumerate(args[:-1]):
        if a == name:
            return args[i + 1]
    return None
with open(os.path.join(d, "argv-%d.txt" % pid), "w") as f:
    f.write("\n".join(args) + "\n")
with open(os.path.join(d, "cwd-%d.txt" % pid), "w") as f:
    f.write(os.getcwd())
sp = arg("--append-system-prompt") or arg("--system-prompt")
if sp:
    with open(os.path.join(d, "system-%d.txt" % pid), "w") as f:
        f.write(open(sp).read())
spawn_model = (arg("--model") or "default").split(":")[0]
if "/" not in spawn_model and spawn_model != "default":
    spawn_model = "fake/" + spawn_model
model = spawn_model
known = ["good", "bad", "second"]
log = open(os.path.join(d, "commands.jsonl"), "a")
def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()
def assistant(text, stop, error=None):
    m = {"role": "assistant",
         "content": [{"type": "text", "text": text}] if text else [],
         "provider": "fake", "model": model.split("/")[-1],
         "usage": {"input": 10, "output": 2, "cacheRead": 0, "cacheWrite": 0,
                   "totalTokens": 12, "cost": {"total": 0.001}},
         "stopReason": stop}
    if error:
        m["errorMessage"] = error
    return m
def finish(msg):
    out({"type": "message_end", "message": msg})
    out({"type": "turn_end"})
    out({"type": "agent_end", "messages": [msg]})
hanging = None
while True:
    raw = sys.stdin.readline()
    if not raw:
        sys.exit(0)
    raw = raw.strip()
    if not raw:
        continue
    cmd = json.loads(raw)
    log.write(json.dumps({"pid": pid, "cmd": cmd}) + "\n")
    log.flush()
    t = cmd.get("type")
    def respond(success=True, **extra):
        r = {"id": cmd.get("id"), "type": "response", "command": t,
             "success": success}
        r.update(extra)
        out(r)
    if t == "new_session":
        model = spawn_model
        respond(data={"cancelled": False})
    elif t == "set_model":
        if cmd.get("provider") == "fake" and cmd.get("modelId") in known:
            model = "fake/" + cmd["modelId"]
            respond(data={"provider": "fake", "id": cmd["modelId"]})
        else:
            respond(False, error="Model not found: %s/%s" % (cmd.get("provider"), cmd.get("modelId")))
    elif t == "set_thinking_level":
        respond()
    elif t == "get_available_models":
        respond(data={"models": [{"provider": "fake", "id": m} for m in known]})
    elif t == "abort":
        if hanging == "deaf":
            continue
        if hanging:
            hanging = None
            finish(assistant("", "aborted", "Request was aborted"))
        respond()
    elif t == "prompt":
        msg = cmd["message"]
        respond()
        out({"type": "agent_start"})
        out({"type": "turn_start"})
        user = {"role": "user", "content": [{"type": "text", "text": msg}]}
        out({"type": "message_start", "message": user})
        out({"type": "message_end", "message": user})
        if "CRASH" in msg:
            sys.stderr.write("fatal: boom\n")
            sys.stderr.flush()
            sys.exit(3)
        if "LINGER" in msg:
            hanging = "deaf" if "DEAF" in msg else "linger"
            out({"type": "message_start", "message": {"role": "assistant", "content": []}})
            out({"type": "message_end", "message": assistant("lingering answer", "stop")})
            continue
        if "DEAF" in msg:
            hanging = "deaf"
            continue
        if "HANG" in msg:
            hanging = "hang"
            continue
        out({"type": "message_start", "message": {"role": "assistant", "content": []}})
        if model.endswith("/bad"):
            finish(assistant("", "error", "429 rate limit exceeded"))
        else:
            text = "answer from %s: %s" % (model, msg)
            out({"type": "message_update", "message": {"role": "assistant"},
                 "assistantMessageEvent": {"type": "text_delta", "delta": text}})
            finish(assistant(text, "stop"))
    else:
        respond(False, error="Unknown command: %s" % t)
)FAKE";

bool contains(const std::string& text, std::string_view what) {
  return text.find(what) != std::string::npos;
}

/// Whether `pid` still exists, zombie or not (kill(pid, 0) succeeds).
bool pid_exists(int pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

/// A scratch tree with the fake pi, a working directory and a task's paths;
/// removed at scope exit.
struct fixture : fake_pi_tree {
  fixture() : fake_pi_tree(fake_rpc_script) {
    // nop
  }

  env_lookup env() const { return map_env(vars); }

  pi_job job(const std::string& task, const std::string& prompt) const {
    pi_job j;
    auto artifacts = root / "artifacts" / "team_1";
    j.run_id = "team_1";
    j.task_id = task;
    j.agent = "executor";
    j.role = "executor";
    j.cwd = (root / "work").string();
    j.prompt = prompt;
    j.models = {"fake/good"};
    j.result_path = (artifacts / "results" / (task + ".txt")).string();
    j.transcript_path
        = (artifacts / "transcripts" / (task + ".jsonl")).string();
    j.log_path = (artifacts / "logs" / (task + ".log")).string();
    j.agent_dir
        = (root / "state" / "runs" / "team_1" / "agents" / task).string();
    j.env = {"FAKE_RPC_DIR=" + record.string(), "CREW_TASK_ID=" + task};
    j.kill_grace_ms = 500;
    return j;
  }

  /// The commands the fake process `pid` received, in order.
  std::vector<json> commands(int pid) const {
    std::vector<json> out;
    for (const auto& line : lines_of(slurp(record / "commands.jsonl"))) {
      auto entry = json::parse(line);
      if (entry["pid"] == pid)
        out.push_back(entry["cmd"]);
    }
    return out;
  }

  strings command_types(int pid) const {
    strings out;
    for (const auto& cmd : commands(pid))
      out.push_back(cmd["type"].get<std::string>());
    return out;
  }

  std::string recorded(const std::string& what, int pid) const {
    return slurp(record / (what + "-" + std::to_string(pid) + ".txt"));
  }
};

/// Runs `job` on `pool`, collecting the pids handed to on_spawn.
pi_result run(pi_rpc_pool& pool, const pi_job& job, std::vector<int>& pids,
              const std::atomic<bool>* cancel = nullptr) {
  pi_callbacks cb;
  cb.on_spawn = [&](int pid) { pids.push_back(pid); };
  cb.cancel = cancel;
  return pool.run(job, cb);
}

/// Starts the pool's one process with a first task and forgets its pid, so
/// that a slow start on a busy machine cannot trip a test's short watchdog.
void warm_up(pi_rpc_pool& pool, fixture& f, std::vector<int>& pids) {
  REQUIRE(run(pool, f.job("00_warm", "Warm up"), pids).ok);
  pids.clear();
}

json status_of(const pi_job& job) {
  return json::parse(slurp(fs::path{job.agent_dir} / "status.json"));
}

} // namespace

TEST_CASE("pi rpc pool runs sequential tasks on one warm process") {
  fixture f;
  std::vector<int> pids;
  pi_rpc_pool pool{2, f.env()};
  auto first = f.job("01_first", "-rf First task");
  auto res1 = run(pool, first, pids);
  REQUIRE_MESSAGE(res1.ok, res1.error);
  CHECK_EQ(res1.text, "answer from fake/good: -rf First task");
  auto second = f.job("02_second", "Second task");
  auto res2 = run(pool, second, pids);
  REQUIRE_MESSAGE(res2.ok, res2.error);
  CHECK_EQ(res2.text, "answer from fake/good: Second task");
  CHECK_EQ(pool.spawned(), 1u);
  CHECK_EQ(pool.size(), 1u);
  REQUIRE_EQ(pids.size(), 2u);
  CHECK_EQ(pids[0], pids[1]);
  // A fresh conversation before each prompt.
  CHECK_EQ(f.command_types(pids[0]),
           strings{"new_session", "prompt", "new_session", "prompt"});
  CHECK_EQ(f.commands(pids[0])[1]["message"], "-rf First task");
  // rpc mode with a private --session-dir instead of --no-session.
  auto argv = lines_of(f.recorded("argv", pids[0]));
  REQUIRE(argv.size() >= 6u);
  CHECK_EQ(strings(argv.begin(), argv.begin() + 2), strings{"--mode", "rpc"});
  CHECK(std::find(argv.begin(), argv.end(), "--no-session") == argv.end());
  auto sdir = std::find(argv.begin(), argv.end(), "--session-dir");
  REQUIRE(sdir != argv.end());
  CHECK(fs::is_directory(*(sdir + 1)));
  CHECK(contains(f.recorded("argv", pids[0]), "--model\nfake/good\n"));
  CHECK_EQ(f.recorded("cwd", pids[0]), fs::canonical(f.root / "work").string());
  CHECK(fs::is_empty(f.root / "work")); // no session files in the cwd

  // The same files as spawn mode.
  CHECK_EQ(slurp(second.result_path), "answer from fake/good: Second task");
  auto transcript = lines_of(slurp(second.transcript_path));
  REQUIRE_FALSE(transcript.empty());
  for (const auto& line : transcript) {
    auto event = json::parse(line);
    CHECK_NE(event["type"], "message_update");
    CHECK_NE(event["type"], "response");
  }
  CHECK(contains(slurp(second.transcript_path), "Second task"));
  CHECK_FALSE(contains(slurp(second.transcript_path), "First task"));
  auto status = status_of(second);
  CHECK_EQ(status["status"], "completed");
  CHECK_EQ(status["model"], "fake/good");
  CHECK_EQ(status["resultArtifactPath"], second.result_path);
  CHECK_EQ(status["usage"]["input"], 10);
  CHECK_EQ(status["progress"]["recentOutput"].back(),
           "answer from fake/good: Second task");
  auto events = lines_of(slurp(fs::path{second.agent_dir} / "events.jsonl"));
  CHECK_EQ(events.size(), transcript.size());
  CHECK(contains(slurp(fs::path{second.agent_dir} / "output.log"),
                 "answer from fake/good: Second task\n"));
  CHECK(contains(slurp(first.log_path), "rpc: spawned pi process"));
  CHECK(contains(slurp(second.log_path), "rpc: reusing pi process"));
  CHECK(contains(slurp(second.log_path), "completed at"));
  auto details = json::parse(res2.details_json());
  CHECK_EQ(details["model"], "fake/good");
  CHECK_EQ(details["usage"]["totalTokens"], 12);
  CHECK_EQ(res2.usage.turns, 1u);
  CHECK(res2.json_events >= 7u);
}

TEST_CASE("pi rpc pool falls back to a process started with the next model, "
          "never set_model (which would rewrite the user's pi settings)") {
  fixture f;
  std::vector<int> pids;
  pi_rpc_pool pool{2, f.env()};
  auto job = f.job("01_fallback", "Do it");
  job.models = {"fake/bad", "fake/good"};
  auto res = run(pool, job, pids);
  REQUIRE_MESSAGE(res.ok, res.error);
  CHECK_EQ(res.text, "answer from fake/good: Do it");
  REQUIRE_EQ(res.model_attempts.size(), 2u);
  CHECK_EQ(res.model_attempts[0].model, "fake/bad");
  CHECK_EQ(res.model_attempts[0].error, "429 rate limit exceeded");
  CHECK(res.model_attempts[1].success);
  CHECK_EQ(res.routing.resolved, "fake/good");
  CHECK_EQ(pool.spawned(), 2u);
  REQUIRE_EQ(pids.size(), 2u);
  CHECK(contains(f.recorded("argv", pids[0]), "--model\nfake/bad\n"));
  CHECK(contains(f.recorded("argv", pids[1]), "--model\nfake/good\n"));
  for (auto pid : pids)
    CHECK_EQ(f.command_types(pid), strings{"new_session", "prompt"});
  CHECK(contains(slurp(job.transcript_path), "429 rate limit exceeded"));
  // The next task finds both processes warm.
  auto next = f.job("02_next", "Again");
  next.models = {"fake/bad", "fake/good"};
  REQUIRE(run(pool, next, pids).ok);
  CHECK_EQ(pool.spawned(), 2u);
}

TEST_CASE("pi rpc pool watchdog aborts a hung prompt and keeps the process") {
  fixture f;
  std::vector<int> pids;
  pi_rpc_pool pool{1, f.env()};
  warm_up(pool, f, pids);
  auto job = f.job("01_hang", "Please HANG");
  job.models = {"fake/good", "fake/second"};
  job.response_timeout_ms = 400;
  auto t0 = std::chrono::steady_clock::now();
  auto res = run(pool, job, pids);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK_FALSE(res.ok);
  CHECK(res.idle_timed_out);
  CHECK(contains(res.error, "no output for 400 ms (response watchdog)"));
  CHECK(contains(res.error, "prompt aborted"));
  CHECK(took < std::chrono::milliseconds{3000});
  // A hang is not a model problem: the next model is not tried.
  CHECK_EQ(res.model_attempts.size(), 1u);
  CHECK_EQ(status_of(job)["status"], "failed");
  CHECK_FALSE(fs::exists(job.result_path));
  REQUIRE_EQ(pids.size(), 1u);
  auto types = f.command_types(pids[0]);
  CHECK_EQ(strings(types.end() - 3, types.end()),
           strings{"new_session", "prompt", "abort"});
  CHECK(contains(slurp(job.transcript_path), R"("stopReason":"aborted")"));
  // The aborted process serves the next task.
  auto next = run(pool, f.job("02_next", "Fine now"), pids);
  REQUIRE_MESSAGE(next.ok, next.error);
  CHECK_EQ(next.text, "answer from fake/good: Fine now");
  CHECK_EQ(pool.spawned(), 1u);
}

TEST_CASE("pi rpc pool kills a process that ignores the abort") {
  fixture f;
  std::vector<int> pids;
  pi_rpc_pool pool{1, f.env()};
  warm_up(pool, f, pids);
  auto job = f.job("01_deaf", "DEAF to everything");
  job.response_timeout_ms = 300;
  job.kill_grace_ms = 300;
  auto res = run(pool, job, pids);
  CHECK_FALSE(res.ok);
  CHECK(res.idle_timed_out);
  CHECK(contains(res.error, "response watchdog"));
  CHECK(contains(res.error, "process killed"));
  REQUIRE_EQ(pids.size(), 1u);
  CHECK_FALSE(pid_exists(pids[0]));
  CHECK_EQ(pool.size(), 0u);
  auto next = run(pool, f.job("02_next", "Fine now"), pids);
  REQUIRE_MESSAGE(next.ok, next.error);
  CHECK_EQ(pool.spawned(), 2u);
  REQUIRE_EQ(pids.size(), 2u);
  CHECK_NE(pids[0], pids[1]);
}

TEST_CASE("pi rpc pool final drain aborts a prompt that does not end after "
          "its answer") {
  fixture f;
  std::vector<int> pids;
  pi_rpc_pool pool{1, f.env()};
  warm_up(pool, f, pids);
  auto job = f.job("01_linger", "LINGER after answering");
  job.final_drain_ms = 300;
  job.response_timeout_ms = 60000;
  auto t0 = std::chrono::steady_clock::now();
  auto res = run(pool, job, pids);
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_MESSAGE(res.ok, res.error);
  CHECK(res.drained);
  CHECK_FALSE(res.idle_timed_out);
  CHECK_EQ(res.exit_code, 0);
  CHECK_EQ(res.text, "lingering answer");
  CHECK_EQ(slurp(job.result_path), "lingering answer");
  CHECK(took >= std::chrono::milliseconds{300});
  CHECK(took < std::chrono::milliseconds{3000});
  CHECK_EQ(status_of(job)["status"], "completed");
  REQUIRE_EQ(pids.size(), 1u);
  auto types = f.command_types(pids[0]);
  CHECK_EQ(strings(types.end() - 3, types.end()),
           strings{"new_session", "prompt", "abort"});
  // The aborted turn after the drain does not reach the transcript.
  CHECK_FALSE(contains(slurp(job.transcript_path), "aborted"));
  CHECK(contains(slurp(job.log_path), "(final drain)"));
  // The process finished the abort and serves the next task.
  auto next = run(pool, f.job("02_next", "Fine now"), pids);
  REQUIRE_MESSAGE(next.ok, next.error);
  CHECK_EQ(pool.spawned(), 1u);
}

TEST_CASE("pi rpc pool final drain replaces a process that ignores the "
          "abort") {
  fixture f;
  std::vector<int> pids;
  pi_rpc_pool pool{1, f.env()};
  auto job = f.job("01_linger", "LINGER and DEAF");
  job.final_drain_ms = 200;
  job.kill_grace_ms = 300;
  auto res = run(pool, job, pids);
  REQUIRE_MESSAGE(res.ok, res.error);
  CHECK(res.drained);
  CHECK_EQ(res.exit_code, 0);
  CHECK_EQ(res.signal, 0);
  CHECK_EQ(res.text, "lingering answer");
  REQUIRE_EQ(pids.size(), 1u);
  CHECK_FALSE(pid_exists(pids[0]));
  CHECK_EQ(pool.size(), 0u);
  auto next = run(pool, f.job("02_next", "Fine now"), pids);
  REQUIRE_MESSAGE(next.ok, next.error);
  CHECK_EQ(pool.spawned(), 2u);
}

TEST_CASE("pi rpc pool replaces a process that crashed mid-prompt") {
  fixture f;
  std::vector<int> pids;
  pi_rpc_pool pool{1, f.env()};
  auto job = f.job("01_crash", "CRASH now");
  auto res = run(pool, job, pids);
  std::string attempts;
  for (auto& a : res.model_attempts)
    attempts += a.model + ": " + a.error + "\n";
  INFO("attempts:\n", attempts);
  CHECK_FALSE(res.ok);
  CHECK(contains(res.error, "exited during the prompt (exit code 3)"));
  CHECK(contains(res.error, "fatal: boom"));
  CHECK_EQ(res.exit_code, 3);
  // Not a model error: a fallback model would not be tried.
  CHECK_FALSE(is_retryable_model_error(res.error));
  CHECK_EQ(res.model_attempts.size(), 1u);
  CHECK(contains(slurp(job.log_path), "fatal: boom"));
  REQUIRE_EQ(pids.size(), 1u);
  CHECK_FALSE(pid_exists(pids[0]));
  auto next = run(pool, f.job("02_next", "Fine now"), pids);
  REQUIRE_MESSAGE(next.ok, next.error);
  CHECK_EQ(pool.spawned(), 2u);
  REQUIRE_EQ(pids.size(), 2u);
  CHECK_NE(pids[0], pids[1]);
}

TEST_CASE("pi rpc pool task timeout and cancel abort the prompt") {
  fixture f;
  std::vector<int> pids;
  pi_rpc_pool pool{1, f.env()};
  REQUIRE(run(pool, f.job("00_warm", "Warm up"), pids).ok);
  SUBCASE("timeout") {
    auto job = f.job("01_slow", "HANG please");
    job.models = {"fake/good", "fake/second"};
    job.timeout_ms = 400;
    auto res = run(pool, job, pids);
    CHECK_FALSE(res.ok);
    CHECK(res.timed_out);
    CHECK_EQ(res.error, "pi timed out after 400 ms");
    CHECK_EQ(res.model_attempts.size(), 1u);
  }
  SUBCASE("cancel") {
    auto job = f.job("01_slow", "HANG please");
    std::atomic<bool> cancel{false};
    std::thread canceller{[&] {
      std::this_thread::sleep_for(std::chrono::milliseconds{500});
      cancel = true;
    }};
    auto res = run(pool, job, pids, &cancel);
    canceller.join();
    CHECK_FALSE(res.ok);
    CHECK(res.cancelled);
    CHECK_EQ(res.error, "cancelled");
    CHECK_EQ(status_of(job)["status"], "cancelled");
  }
  auto next = run(pool, f.job("02_next", "Fine now"), pids);
  REQUIRE_MESSAGE(next.ok, next.error);
  CHECK_EQ(pool.spawned(), 1u);
}

TEST_CASE("pi rpc pool keys processes by their spawn-time arguments") {
  fixture f;
  std::vector<int> pids;
  auto a = f.job("01_a", "Task A");
  a.system_prompt = "You are A.";
  auto b = f.job("02_b", "Task B");
  b.system_prompt = "You are B.";
  SUBCASE("room for both") {
    pi_rpc_pool pool{4, f.env()};
    REQUIRE(run(pool, a, pids).ok);
    REQUIRE(run(pool, b, pids).ok);
    CHECK_EQ(pool.spawned(), 2u);
    REQUIRE_EQ(pids.size(), 2u);
    CHECK_NE(pids[0], pids[1]);
    CHECK_EQ(f.recorded("system", pids[0]), "You are A.");
    CHECK_EQ(f.recorded("system", pids[1]), "You are B.");
    // The same agent again reuses its process.
    auto a2 = f.job("03_a", "Task A again");
    a2.system_prompt = "You are A.";
    auto res = run(pool, a2, pids);
    REQUIRE_MESSAGE(res.ok, res.error);
    CHECK_EQ(pool.spawned(), 2u);
    CHECK_EQ(pids.back(), pids[0]);
  }
  SUBCASE("a full pool evicts an idle process of another key") {
    pi_rpc_pool pool{1, f.env()};
    REQUIRE(run(pool, a, pids).ok);
    REQUIRE(run(pool, b, pids).ok);
    CHECK_EQ(pool.spawned(), 2u);
    CHECK_EQ(pool.size(), 1u);
    REQUIRE_EQ(pids.size(), 2u);
    CHECK_FALSE(pid_exists(pids[0]));
    CHECK(pid_exists(pids[1]));
    CHECK(contains(slurp(b.log_path), "evicting idle pi process"));
  }
}

TEST_CASE("pi rpc pool serves concurrent task workers") {
  fixture f;
  pi_rpc_pool pool{2, f.env()};
  std::atomic<int> ok{0};
  auto worker = [&](const std::string& name) {
    for (int i = 0; i < 3; ++i) {
      std::vector<int> pids;
      auto res
          = run(pool, f.job(name + std::to_string(i), "Task " + name), pids);
      if (res.ok && res.text == "answer from fake/good: Task " + name)
        ++ok;
    }
  };
  std::thread t1{worker, "a"};
  std::thread t2{worker, "b"};
  t1.join();
  t2.join();
  CHECK_EQ(ok.load(), 6);
  CHECK(pool.spawned() <= 2u);
}

TEST_CASE("pi rpc pool destructor leaves no process alive") {
  fixture f;
  std::vector<int> pids;
  fs::path session_dir;
  {
    pi_rpc_pool pool{4, f.env()};
    auto a = f.job("01_a", "Task A");
    a.system_prompt = "You are A.";
    auto b = f.job("02_b", "Task B");
    b.system_prompt = "You are B.";
    REQUIRE(run(pool, a, pids).ok);
    REQUIRE(run(pool, b, pids).ok);
    REQUIRE_EQ(pids.size(), 2u);
    auto argv = lines_of(f.recorded("argv", pids[0]));
    auto sdir = std::find(argv.begin(), argv.end(), "--session-dir");
    REQUIRE(sdir != argv.end());
    session_dir = *(sdir + 1);
    CHECK(pid_exists(pids[0]));
    CHECK(pid_exists(pids[1]));
  }
  for (int pid : pids)
    CHECK_FALSE(pid_exists(pid));
  // The private temp directory went with its process.
  CHECK_FALSE(fs::exists(session_dir.parent_path()));
}

TEST_CASE("pi rpc pool mock modes and the depth guard spawn nothing") {
  fixture f;
  std::vector<int> pids;
  SUBCASE("mock") {
    f.vars["PI_TEAMS_MOCK_CHILD_PI"] = "json-success";
    pi_rpc_pool pool{1, f.env()};
    auto res = run(pool, f.job("01_mock", "Mocked"), pids);
    REQUIRE_MESSAGE(res.ok, res.error);
    CHECK_EQ(pool.spawned(), 0u);
  }
  SUBCASE("depth guard") {
    f.vars["PI_CREW_DEPTH"] = "2";
    pi_rpc_pool pool{1, f.env()};
    auto res = run(pool, f.job("01_deep", "Too deep"), pids);
    CHECK_FALSE(res.ok);
    CHECK(contains(res.error, "depth guard"));
    CHECK_EQ(pool.spawned(), 0u);
  }
  CHECK(pids.empty());
}
