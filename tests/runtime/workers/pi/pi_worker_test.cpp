#include "runtime/workers/pi/pi_worker.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
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

// A fake `pi` in JSON mode. It records its argv (one per line), stdin, the
// PI_CREW_* environment and a copy of the system prompt file (with its mode)
// under $FAKE_PI_DIR, numbered per call, then answers by `--model`:
// - bad:   an assistant message_end with stopReason error and a 429, exit 0
//          (what pi really does in JSON mode);
// - good:  a tool call and a final answer, each with usage;
// - hang:  one line, then silence;
// - linger: a final answer, then silence instead of exiting;
// - sigterm: like linger, but SIGTERM makes it print an aborted turn;
// - slowexit: a final answer, then an exit 0.3 s later;
// - toolwait: a tool-call message_end, then silence;
// - slowtalk: tool events every 0.1 s for 1.5 s, then a final answer;
// - crash: a message on stderr, exit 3.
constexpr const char* fake_pi_script = R"FAKE(#!/bin/sh
dir="$FAKE_PI_DIR"
n=$(( $(cat "$dir/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$dir/count"
: > "$dir/argv-$n.txt"
for a in "$@"; do printf '%s\n' "$a" >> "$dir/argv-$n.txt"; done
cat > "$dir/stdin-$n.txt"
env | grep '^PI_CREW_\|^CREW_FAKE_' | sort > "$dir/env-$n.txt"
pwd > "$dir/cwd-$n.txt"
model=default; prev=
for a in "$@"; do
  case "$prev" in
    --model) model="$a" ;;
    --append-system-prompt|--system-prompt)
      cp "$a" "$dir/system-$n.txt"; stat -c %a "$a" > "$dir/system-mode-$n.txt" ;;
  esac
  prev="$a"
done
case "$model" in
bad*)
cat <<'EOF'
{"type":"session","version":3,"id":"s-bad","timestamp":"2026-11-26T00:35:12.516Z","cwd":"/w"}
{"type":"agent_start"}
{"type":"turn_start"}
{"type":"message_start","message":{"role":"user","content":[{"type":"text","text":"prompt"}]}}
{"type":"message_end","message":{"role":"user","content":[{"type":"text","text":"prompt"}]}}
{"type":"message_start","message":{"role":"assistant","content":[],"provider":"fake","model":"bad"}}
{"type":"message_end","message":{"role":"assistant","content":[],"api":"openai-completions","provider":"fake","model":"bad","usage":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"totalTokens":0,"cost":{"total":0}},"stopReason":"error","errorMessage":"429 rate limit exceeded"}}
{"type":"turn_end"}
{"type":"agent_end","messages":[]}
EOF
;;
good*)
cat <<'EOF'
{"type":"session","version":3,"id":"s-good","timestamp":"2026-11-26T00:35:13.516Z","cwd":"/w"}
{"type":"agent_start"}
{"type":"turn_start"}
{"type":"message_start","message":{"role":"user","content":[{"type":"text","text":"prompt"}]}}
{"type":"message_end","message":{"role":"user","content":[{"type":"text","text":"prompt"}]}}
{"type":"message_start","message":{"role":"assistant","content":[],"provider":"fake","model":"good"}}
{"type":"message_update","assistantMessageEvent":{"type":"text_delta","contentIndex":0,"delta":"Running a command."},"message":{"role":"assistant"}}
{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"Running a command."},{"type":"toolCall","id":"call_1","name":"bash","arguments":{"command":"echo hi"}}],"provider":"fake","model":"good","usage":{"input":100,"output":10,"cacheRead":0,"cacheWrite":0,"totalTokens":110,"cost":{"total":0.01}},"stopReason":"toolUse"}}
{"type":"tool_execution_start","toolCallId":"call_1","toolName":"bash","args":{"command":"echo hi"}}
{"type":"tool_execution_end","toolCallId":"call_1","toolName":"bash","result":{"content":[{"type":"text","text":"hi\n"}]},"isError":false}
{"type":"message_start","message":{"role":"toolResult","toolCallId":"call_1","toolName":"bash","content":[{"type":"text","text":"hi\n"}]}}
{"type":"message_end","message":{"role":"toolResult","toolCallId":"call_1","toolName":"bash","content":[{"type":"text","text":"hi\n"}]}}
{"type":"turn_end"}
{"type":"turn_start"}
{"type":"message_start","message":{"role":"assistant","content":[],"provider":"fake","model":"good"}}
{"type":"message_update","assistantMessageEvent":{"type":"text_delta","contentIndex":0,"delta":"All done: 42"},"message":{"role":"assistant"}}
{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"All done: 42"}],"provider":"fake","model":"good","usage":{"input":200,"output":20,"cacheRead":5,"cacheWrite":1,"totalTokens":226,"cost":{"total":0.02}},"stopReason":"stop"}}
{"type":"turn_end"}
{"type":"agent_end","messages":[{"role":"assistant","content":[{"type":"text","text":"All done: 42"}],"stopReason":"stop"}]}
EOF
;;
hang*)
echo '{"type":"session","version":3,"id":"s-hang","timestamp":"2026-11-26T00:35:14.516Z","cwd":"/w"}'
sleep 30
;;
linger*)
echo '{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"Answer, then no exit"}],"usage":{"input":7,"output":3},"stopReason":"stop"}}'
sleep 30
;;
sigterm*)
trap 'echo "{\"type\":\"message_end\",\"message\":{\"role\":\"assistant\",\"content\":[],\"stopReason\":\"aborted\",\"errorMessage\":\"Request was aborted\"}}"; exit 0' TERM
echo '{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"Answer, then no exit"}],"usage":{"input":7,"output":3},"stopReason":"stop"}}'
sleep 30 &
wait $!
;;
slowexit*)
echo '{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"Answer, then a slow exit"}],"stopReason":"stop"}}'
sleep 0.3
echo '{"type":"agent_end","messages":[]}'
;;
slowtalk*)
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
  echo '{"type":"tool_execution_start","toolName":"read","args":{}}'
  echo '{"type":"tool_execution_end","toolName":"read","isError":false}'
  sleep 0.1
done
echo '{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"Talked slowly"}],"stopReason":"stop"}}'
;;
toolwait*)
echo '{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"Calling a tool."},{"type":"toolCall","id":"c1","name":"bash","arguments":{}}]}}'
sleep 30
;;
crash*)
echo "fatal: boom" >&2
exit 3
;;
*)
echo "unexpected model $model" >&2
exit 1
;;
esac
)FAKE";

bool contains(const std::string& text, std::string_view what) {
  return text.find(what) != std::string::npos;
}

/// A scratch tree with the fake pi, a working directory and the run's
/// artifact and state paths; removed at scope exit.
struct fixture : fake_pi_tree {
  pi_job job;
  std::vector<int> pids;
  pi_callbacks cb;

  fixture() : fake_pi_tree(fake_pi_script) {
    auto artifacts = root / "artifacts" / "team_1";
    job.run_id = "team_1";
    job.task_id = "01_build";
    job.agent = "executor";
    job.role = "executor";
    job.cwd = (root / "work").string();
    job.prompt = "Build the thing.";
    job.result_path = (artifacts / "results" / "01_build.txt").string();
    job.transcript_path
        = (artifacts / "transcripts" / "01_build.jsonl").string();
    job.log_path = (artifacts / "logs" / "01_build.log").string();
    job.agent_dir
        = (root / "state" / "runs" / "team_1" / "agents" / "01_build").string();
    job.env = {"FAKE_PI_DIR=" + record.string(), "CREW_FAKE_MARK=1"};
    job.kill_grace_ms = 500;
    cb.on_spawn = [this](int pid) { pids.push_back(pid); };
  }

  pi_result run() {
    cb.env = map_env(vars);
    return run_pi_attempt(job, cb);
  }

  int calls() const {
    auto text = slurp(record / "count");
    return text.empty() ? 0 : std::stoi(text);
  }

  std::string recorded(const std::string& what, int call) const {
    return slurp(record / (what + "-" + std::to_string(call) + ".txt"));
  }

  fs::path agent_file(const char* name) const {
    return fs::path{job.agent_dir} / name;
  }

  json status() const { return json::parse(slurp(agent_file("status.json"))); }
};

} // namespace

TEST_CASE("pi worker passes the prompt on stdin and never as an argument") {
  fixture f;
  f.job.models = {"good"};
  f.job.thinking = "high";
  f.job.tools = {"read", "bash"};
  for (std::string prompt : {"-rf --help\nDo it", "@notes.md please"}) {
    f.job.prompt = prompt;
    auto res = f.run();
    REQUIRE_MESSAGE(res.ok, res.error);
    auto call = f.calls();
    auto argv = lines_of(f.recorded("argv", call));
    CHECK_EQ(argv, strings{"--mode", "json", "-p", "--no-session", "--model",
                           "good:high", "--tools", "read,bash", "--no-skills"});
    CHECK(std::find(argv.begin(), argv.end(), prompt) == argv.end());
    CHECK_EQ(f.recorded("stdin", call), prompt);
  }
  // The worker runs in the job's cwd with the depth and role variables.
  CHECK_EQ(f.recorded("cwd", 1),
           fs::canonical(f.root / "work").string() + "\n");
  auto env = f.recorded("env", 1);
  CHECK(contains(env, "CREW_FAKE_MARK=1\n"));
  CHECK(contains(env, "PI_CREW_DEPTH=1\n"));
  CHECK(contains(env, "PI_CREW_MAX_DEPTH=2\n"));
  CHECK(contains(env, "PI_CREW_ROLE=executor\n"));
  CHECK_EQ(f.pids.size(), 2u);
}

TEST_CASE("pi worker falls back from a rate-limited model to the next one") {
  fixture f;
  f.job.models = {"bad", "good"};
  std::atomic<int> activity{0};
  f.cb.on_activity = [&] { ++activity; };
  auto res = f.run();
  REQUIRE_MESSAGE(res.ok, res.error);
  CHECK(res.error.empty());
  CHECK_EQ(res.exit_code, 0);
  CHECK_EQ(res.text, "All done: 42");
  CHECK_EQ(f.calls(), 2);
  CHECK(contains(f.recorded("argv", 1), "--model\nbad\n"));
  CHECK(contains(f.recorded("argv", 2), "--model\ngood\n"));
  REQUIRE_EQ(res.model_attempts.size(), 2u);
  CHECK_EQ(res.model_attempts[0].model, "bad");
  CHECK_FALSE(res.model_attempts[0].success);
  CHECK_EQ(res.model_attempts[0].exit_code, 0);
  CHECK_EQ(res.model_attempts[0].error, "429 rate limit exceeded");
  CHECK_EQ(res.model_attempts[1].model, "good");
  CHECK(res.model_attempts[1].success);
  CHECK_EQ(res.routing.resolved, "good");
  CHECK_EQ(res.routing.used_attempt, 1);
  CHECK(contains(res.routing.fallback_reason, "429"));
  CHECK_EQ(res.routing.candidates, strings{"bad", "good"});
  // Usage: both assistant calls of "good" plus the failed call of "bad".
  CHECK_EQ(res.usage.input, 300u);
  CHECK_EQ(res.usage.output, 30u);
  CHECK_EQ(res.usage.cache_read, 5u);
  CHECK_EQ(res.usage.cache_write, 1u);
  CHECK_EQ(res.usage.total_tokens, 336u);
  CHECK(res.usage.cost == doctest::Approx(0.03));
  CHECK_EQ(res.usage.turns, 3u);
  CHECK_EQ(res.tool_uses, 1u);
  CHECK_EQ(res.json_events, 9u + 19u);
  CHECK(activity.load() >= 2);

  // details_json
  auto details = json::parse(res.details_json());
  CHECK_EQ(details["model"], "good");
  CHECK_EQ(details["modelAttempts"].size(), 2u);
  CHECK_EQ(details["modelAttempts"][0]["model"], "bad");
  CHECK_EQ(details["modelAttempts"][0]["success"], false);
  CHECK_EQ(details["modelAttempts"][1]["success"], true);
  CHECK(contains(details["modelRouting"]["fallbackReason"].get<std::string>(),
                 "429"));
  CHECK_EQ(details["usage"]["input"], 300);
  CHECK_EQ(details["usage"]["totalTokens"], 336);
  CHECK_EQ(details["usage"]["turns"], 3);
  CHECK_EQ(details["jsonEvents"], 28);

  // The result file holds the final text.
  CHECK_EQ(slurp(f.job.result_path), "All done: 42");

  // The transcript holds compacted events of both attempts, no deltas.
  auto transcript = lines_of(slurp(f.job.transcript_path));
  REQUIRE_FALSE(transcript.empty());
  for (const auto& line : transcript) {
    auto event = json::parse(line);
    CHECK(event.contains("type"));
    CHECK_NE(event["type"], "message_update");
  }
  auto transcript_text = slurp(f.job.transcript_path);
  CHECK(contains(transcript_text, "429 rate limit exceeded"));
  CHECK(contains(transcript_text, R"({"type":"tool_execution_start")"));
  CHECK(contains(transcript_text, "All done: 42"));
  CHECK_FALSE(contains(transcript_text, "\"role\":\"user\""));

  // events.jsonl: {seq,time,event} with seq counting up from 1.
  auto events = lines_of(slurp(f.agent_file("events.jsonl")));
  REQUIRE_EQ(events.size(), transcript.size());
  for (size_t i = 0; i < events.size(); ++i) {
    auto entry = json::parse(events[i]);
    CHECK_EQ(entry["seq"], i + 1);
    CHECK(entry["time"].get<std::string>().ends_with("Z"));
    CHECK_EQ(entry["event"], json::parse(transcript[i]));
  }

  // output.log: display lines.
  auto output = slurp(f.agent_file("output.log"));
  CHECK(contains(output, "Running a command.\n"));
  CHECK(contains(output, "tool: bash\n"));
  CHECK(contains(output, "All done: 42\n"));

  // The log: the command, the attempts and the summary.
  auto log = slurp(f.job.log_path);
  CHECK(contains(log, "attempt 1/2 model=bad"));
  CHECK(contains(log, "error=429 rate limit exceeded"));
  CHECK(contains(log, "trying the next model"));
  CHECK(contains(log, "--mode json -p --no-session --model good"));
  CHECK(contains(log, "completed at"));

  // status.json: the agent record of inventory §1.7.
  auto status = f.status();
  CHECK_EQ(status["id"], "team_1:01_build");
  CHECK_EQ(status["runId"], "team_1");
  CHECK_EQ(status["taskId"], "01_build");
  CHECK_EQ(status["agent"], "executor");
  CHECK_EQ(status["role"], "executor");
  CHECK_EQ(status["runtime"], "child-process");
  CHECK_EQ(status["status"], "completed");
  CHECK(status["startedAt"].is_string());
  CHECK(status["completedAt"].is_string());
  CHECK_EQ(status["resultArtifactPath"], f.job.result_path);
  CHECK_EQ(status["transcriptPath"], f.job.transcript_path);
  CHECK_EQ(status["statusPath"], f.agent_file("status.json").string());
  CHECK_EQ(status["eventsPath"], f.agent_file("events.jsonl").string());
  CHECK_EQ(status["outputPath"], f.agent_file("output.log").string());
  CHECK_EQ(status["toolUses"], 1);
  CHECK_EQ(status["jsonEvents"], 28);
  CHECK_EQ(status["model"], "good");
  CHECK_EQ(status["routing"]["resolved"], "good");
  CHECK_EQ(status["routing"]["usedAttempt"], 1);
  CHECK_EQ(status["usage"]["input"], 300);
  CHECK_EQ(status["progress"]["toolCount"], 1);
  CHECK_FALSE(status["progress"].contains("currentTool"));
  auto recent = status["progress"]["recentOutput"];
  REQUIRE_FALSE(recent.empty());
  CHECK_EQ(recent.back(), "All done: 42");
  CHECK_FALSE(status.contains("error"));
  // Pretty-printed with a trailing newline, like pi-crew's JSON files.
  CHECK(slurp(f.agent_file("status.json")).ends_with("}\n"));

  // A second call appends to events.jsonl with seq continuing.
  f.job.models = {"good"};
  REQUIRE(f.run().ok);
  auto more = lines_of(slurp(f.agent_file("events.jsonl")));
  REQUIRE(more.size() > events.size());
  CHECK_EQ(json::parse(more.back())["seq"], more.size());
}

TEST_CASE("pi worker writes the system prompt to a private file") {
  fixture f;
  f.job.models = {"good"};
  f.job.system_prompt = "You are careful.\n--not-a-flag";
  auto res = f.run();
  REQUIRE_MESSAGE(res.ok, res.error);
  auto argv = lines_of(f.recorded("argv", 1));
  auto flag = std::find(argv.begin(), argv.end(), "--append-system-prompt");
  REQUIRE(flag != argv.end());
  REQUIRE(flag + 1 != argv.end());
  fs::path file = *(flag + 1);
  CHECK_EQ(f.recorded("system", 1), f.job.system_prompt);
  CHECK_EQ(f.recorded("system-mode", 1), "600\n");
  CHECK_FALSE(fs::exists(file));
  CHECK_FALSE(fs::exists(file.parent_path()));

  f.job.replace_system_prompt = true;
  REQUIRE(f.run().ok);
  CHECK(contains(f.recorded("argv", 2), "--system-prompt\n"));
  CHECK_FALSE(contains(f.recorded("argv", 2), "--append-system-prompt"));
}

TEST_CASE("pi worker shares one system prompt file between concurrent "
          "tasks") {
  fixture a, b;
  for (auto* f : {&a, &b}) {
    f->job.models = {"slowtalk"};
    f->job.system_prompt = "You are shared.";
  }
  pi_result ra, rb;
  std::thread other{[&] { rb = b.run(); }};
  ra = a.run();
  other.join();
  REQUIRE_MESSAGE(ra.ok, ra.error);
  REQUIRE_MESSAGE(rb.ok, rb.error);
  auto file_of = [](const fixture& f) {
    auto argv = lines_of(f.recorded("argv", 1));
    auto flag = std::find(argv.begin(), argv.end(), "--append-system-prompt");
    REQUIRE(flag + 1 < argv.end());
    return *(flag + 1);
  };
  // The runs overlapped, so the second one found the file of the first.
  CHECK_EQ(file_of(a), file_of(b));
  CHECK_EQ(a.recorded("system", 1), "You are shared.");
  CHECK_EQ(b.recorded("system", 1), "You are shared.");
  CHECK_FALSE(fs::exists(file_of(a)));
  CHECK_FALSE(fs::exists(fs::path{file_of(a)}.parent_path()));
}

TEST_CASE("pi worker stops at a non-retryable failure") {
  fixture f;
  f.job.models = {"crash", "good"};
  // A stale result of an earlier run must not survive a failure.
  fs::create_directories(fs::path{f.job.result_path}.parent_path());
  std::ofstream{f.job.result_path} << "stale";
  auto res = f.run();
  CHECK_FALSE(res.ok);
  CHECK_EQ(res.exit_code, 3);
  CHECK_EQ(res.error, "fatal: boom");
  CHECK_EQ(f.calls(), 1);
  REQUIRE_EQ(res.model_attempts.size(), 1u);
  CHECK_EQ(res.model_attempts[0].exit_code, 3);
  CHECK_FALSE(fs::exists(f.job.result_path));
  CHECK(contains(slurp(f.job.log_path), "fatal: boom"));
  auto status = f.status();
  CHECK_EQ(status["status"], "failed");
  CHECK_EQ(status["error"], "fatal: boom");
  CHECK_EQ(status["model"], "crash");
  CHECK_FALSE(status.contains("resultArtifactPath"));
}

TEST_CASE("pi worker response watchdog kills a hung pi") {
  fixture f;
  f.job.models = {"hang", "good"};
  f.job.response_timeout_ms = 500;
  f.job.kill_grace_ms = 300;
  auto t0 = std::chrono::steady_clock::now();
  auto res = f.run();
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK_FALSE(res.ok);
  CHECK(res.idle_timed_out);
  CHECK_FALSE(res.timed_out);
  CHECK(contains(res.error, "no output for 500 ms (response watchdog)"));
  CHECK(took < std::chrono::milliseconds{3000});
  // A hang is not a model problem: the next model is not tried.
  CHECK_EQ(f.calls(), 1);
  CHECK_EQ(res.signal, SIGTERM);
  CHECK_EQ(f.status()["status"], "failed");
  CHECK_EQ(res.json_events, 1u);
}

TEST_CASE("pi worker keeps an answer when pi hangs after it") {
  fixture f;
  f.job.models = {"linger", "good"};
  f.job.response_timeout_ms = 400;
  f.job.kill_grace_ms = 300;
  auto res = f.run();
  REQUIRE_MESSAGE(res.ok, res.error);
  CHECK_EQ(res.text, "Answer, then no exit");
  CHECK_EQ(slurp(f.job.result_path), "Answer, then no exit");
  CHECK_EQ(f.calls(), 1);
  REQUIRE_EQ(res.model_attempts.size(), 1u);
  CHECK_EQ(res.model_attempts[0].exit_code, 0);
  CHECK_EQ(res.usage.input, 7u);
  CHECK(contains(slurp(f.job.log_path), "hung after its final answer"));
}

TEST_CASE("pi worker replaces the agent record atomically while pi runs") {
  fixture f;
  f.job.models = {"slowtalk"};
  // A reader that never sees a partial record.
  std::atomic<bool> done{false};
  int reads = 0, torn = 0;
  std::set<std::string> statuses;
  std::thread reader{[&] {
    auto path = f.agent_file("status.json");
    while (!done) {
      auto text = slurp(path);
      if (!text.empty()) {
        ++reads;
        auto rec = json::parse(text, nullptr, false);
        if (rec.is_discarded())
          ++torn;
        else
          statuses.insert(rec["status"].get<std::string>());
      }
      std::this_thread::sleep_for(std::chrono::microseconds{200});
    }
  }};
  auto res = f.run();
  done = true;
  reader.join();
  REQUIRE_MESSAGE(res.ok, res.error);
  CHECK(reads > 10);
  CHECK_EQ(torn, 0);
  CHECK(statuses.count("running") == 1);
  auto status = f.status();
  CHECK_EQ(status["status"], "completed");
  CHECK_EQ(status["progress"]["toolCount"], 15);
  // Only the agent files: the spare record is gone.
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator{f.job.agent_dir})
    names.insert(entry.path().filename().string());
  CHECK_EQ(names,
           std::set<std::string>{"events.jsonl", "output.log", "status.json"});
}

TEST_CASE("pi worker final drain ends a pi that lingers after its answer") {
  fixture f;
  f.job.models = {"linger", "good"};
  f.job.response_timeout_ms = 60000;
  f.job.kill_grace_ms = 300;
  SUBCASE("set on the job") {
    f.job.final_drain_ms = 300;
  }
  SUBCASE("from CREW_PI_FINAL_DRAIN_MS") {
    f.vars["CREW_PI_FINAL_DRAIN_MS"] = "300";
  }
  SUBCASE("pi prints an aborted turn when terminated") {
    // What pi prints after the drain ran out does not undo the answer.
    f.job.models = {"sigterm", "good"};
    f.job.final_drain_ms = 300;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto res = f.run();
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_MESSAGE(res.ok, res.error);
  CHECK(res.drained);
  CHECK_FALSE(res.idle_timed_out);
  CHECK_EQ(res.error, "");
  CHECK_EQ(res.exit_code, 0);
  CHECK_EQ(res.signal, 0);
  CHECK_EQ(res.text, "Answer, then no exit");
  CHECK_EQ(slurp(f.job.result_path), "Answer, then no exit");
  // At the drain, not at the watchdog.
  CHECK(took >= std::chrono::milliseconds{300});
  CHECK(took < std::chrono::milliseconds{3000});
  CHECK_EQ(f.calls(), 1);
  REQUIRE_EQ(res.model_attempts.size(), 1u);
  CHECK_EQ(res.model_attempts[0].exit_code, 0);
  CHECK(res.model_attempts[0].success);
  CHECK(contains(slurp(f.job.log_path), "ms of its final answer (final drain)"));
  CHECK_EQ(f.status()["status"], "completed");
  REQUIRE_EQ(f.pids.size(), 1u);
  CHECK_FALSE(process_alive(f.pids[0]));
}

TEST_CASE("pi worker final drain spares a pi that exits after its answer") {
  fixture f;
  f.job.final_drain_ms = 2000;
  for (const char* model : {"slowexit", "good"}) {
    CAPTURE(model);
    f.job.models = {model};
    auto t0 = std::chrono::steady_clock::now();
    auto res = f.run();
    auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE_MESSAGE(res.ok, res.error);
    CHECK_FALSE(res.drained);
    CHECK_EQ(res.exit_code, 0);
    CHECK(took < std::chrono::milliseconds{1800});
    CHECK_FALSE(contains(slurp(f.job.log_path), "final drain"));
  }
}

TEST_CASE("pi worker final drain does not start at a tool call") {
  fixture f;
  f.job.models = {"toolwait"};
  f.job.final_drain_ms = 100;
  f.job.response_timeout_ms = 800;
  f.job.kill_grace_ms = 200;
  auto t0 = std::chrono::steady_clock::now();
  auto res = f.run();
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK_FALSE(res.ok);
  CHECK_FALSE(res.drained);
  CHECK(res.idle_timed_out);
  CHECK(took >= std::chrono::milliseconds{800});
}

TEST_CASE("pi worker task timeout and cancel end the attempt loop") {
  SUBCASE("timeout") {
    fixture f;
    f.job.models = {"hang", "good"};
    f.job.timeout_ms = 400;
    f.job.kill_grace_ms = 200;
    auto res = f.run();
    CHECK_FALSE(res.ok);
    CHECK(res.timed_out);
    CHECK_EQ(res.error, "pi timed out after 400 ms");
    CHECK_EQ(f.calls(), 1);
  }
  SUBCASE("cancel") {
    fixture f;
    f.job.models = {"hang", "good"};
    std::atomic<bool> cancel{false};
    f.cb.cancel = &cancel;
    std::thread canceller{[&] {
      std::this_thread::sleep_for(std::chrono::milliseconds{300});
      cancel = true;
    }};
    auto res = f.run();
    canceller.join();
    CHECK_FALSE(res.ok);
    CHECK(res.cancelled);
    CHECK_EQ(res.error, "cancelled");
    CHECK_EQ(f.calls(), 1);
    CHECK_EQ(f.status()["status"], "cancelled");
  }
}

TEST_CASE("pi worker reports a missing pi binary with a fix") {
  fixture f;
  f.job.models = {"good"};
  f.vars["PI_TEAMS_PI_BIN"] = (f.root / "nope" / "pi").string();
  auto res = f.run();
  CHECK_FALSE(res.ok);
  CHECK(contains(res.error, "PI_TEAMS_PI_BIN="));
  CHECK(contains(res.error, "does not exist"));
  CHECK(contains(res.error, "install @mariozechner/pi-coding-agent"));
  CHECK(f.pids.empty());
  REQUIRE_EQ(res.model_attempts.size(), 1u);

  f.vars.erase("PI_TEAMS_PI_BIN");
  f.vars["PATH"] = (f.root / "empty").string();
  res = f.run();
  CHECK_FALSE(res.ok);
  CHECK(contains(res.error, "pi not found on PATH"));
  CHECK(contains(res.error, "install @mariozechner/pi-coding-agent"));
  CHECK(f.pids.empty());
  CHECK_EQ(f.status()["status"], "failed");
}

TEST_CASE("pi worker mock modes spawn nothing and feed the stream") {
  fixture f;
  f.vars.erase("PI_TEAMS_PI_BIN");
  f.vars["PATH"] = (f.root / "empty").string(); // mocks need no pi
  SUBCASE("success") {
    f.vars["PI_TEAMS_MOCK_CHILD_PI"] = "success";
    auto res = f.run();
    REQUIRE_MESSAGE(res.ok, res.error);
    CHECK_EQ(res.text, "Mock child Pi success for executor");
    CHECK_EQ(slurp(f.job.result_path), "Mock child Pi success for executor");
    CHECK_EQ(res.json_events, 0u);
    CHECK_EQ(slurp(f.job.transcript_path),
             "Mock child Pi success for executor\n");
    CHECK_EQ(res.model_attempts.size(), 1u);
    CHECK_EQ(res.routing.resolved, "default");
  }
  SUBCASE("json-success") {
    f.vars["PI_TEAMS_MOCK_CHILD_PI"] = "json-success";
    auto res = f.run();
    REQUIRE_MESSAGE(res.ok, res.error);
    CHECK_EQ(res.text, "Mock JSON success for executor");
    CHECK_EQ(res.json_events, 2u);
    CHECK_EQ(res.usage.input, 10u);
    CHECK_EQ(res.usage.output, 5u);
    CHECK(res.usage.cost == doctest::Approx(0.001));
    CHECK_EQ(res.usage.turns, 1u);
    CHECK_EQ(lines_of(slurp(f.agent_file("events.jsonl"))).size(), 2u);
    CHECK_EQ(f.status()["status"], "completed");
    CHECK_EQ(f.status()["jsonEvents"], 2);
  }
  SUBCASE("adaptive-plan") {
    f.vars["PI_TEAMS_MOCK_CHILD_PI"] = "adaptive-plan";
    f.job.prompt = "plan it ADAPTIVE_PLAN_JSON_START";
    auto res = f.run();
    REQUIRE(res.ok);
    CHECK(contains(res.text, "ADAPTIVE_PLAN_JSON_START"));
    CHECK(contains(slurp(f.job.result_path), "\"phases\""));
  }
  SUBCASE("retryable-failure tries every candidate") {
    f.vars["PI_TEAMS_MOCK_CHILD_PI"] = "retryable-failure";
    f.job.models = {"m1", "m2", "m3"};
    auto res = f.run();
    CHECK_FALSE(res.ok);
    CHECK_EQ(res.error, "rate limit: mock failure");
    REQUIRE_EQ(res.model_attempts.size(), 3u);
    CHECK_EQ(res.model_attempts[2].model, "m3");
    CHECK_EQ(res.model_attempts[2].exit_code, 1);
    CHECK_EQ(res.routing.used_attempt, 2);
    CHECK_EQ(res.routing.fallback_reason, "rate limit: mock failure");
    CHECK(contains(slurp(f.job.log_path), "rate limit: mock failure"));
    CHECK_FALSE(fs::exists(f.job.result_path));
  }
  SUBCASE("any other value fails once") {
    f.vars["PI_TEAMS_MOCK_CHILD_PI"] = "explode";
    f.job.models = {"m1", "m2"};
    auto res = f.run();
    CHECK_FALSE(res.ok);
    CHECK_EQ(res.error, "mock failure: explode");
    CHECK_EQ(res.model_attempts.size(), 1u);
    CHECK_EQ(f.status()["error"], "mock failure: explode");
  }
  CHECK(f.pids.empty());
  CHECK_EQ(f.calls(), 0);
}

TEST_CASE("pi worker depth guard blocks before mocks and spawning") {
  fixture f;
  f.job.models = {"good"};
  f.vars["PI_CREW_DEPTH"] = "2";
  f.vars["PI_TEAMS_MOCK_CHILD_PI"] = "success";
  auto res = f.run();
  CHECK_FALSE(res.ok);
  CHECK_EQ(res.error,
           "pi-crew depth guard blocked child worker: depth 2 >= max 2");
  CHECK_EQ(res.exit_code, 1);
  CHECK(f.pids.empty());
  CHECK_EQ(f.status()["status"], "failed");
  CHECK_FALSE(fs::exists(f.job.result_path));

  // A higher configured limit lets the worker run, one level deeper.
  f.job.config_max_depth = 5;
  f.vars.erase("PI_TEAMS_MOCK_CHILD_PI");
  res = f.run();
  REQUIRE_MESSAGE(res.ok, res.error);
  auto env = f.recorded("env", 1);
  CHECK(contains(env, "PI_CREW_DEPTH=3\n"));
  CHECK(contains(env, "PI_CREW_MAX_DEPTH=5\n"));
}

TEST_CASE("pi worker says what to set when pi's default model fails an agent "
          "without a model") {
  fixture f;
  f.job.models = {}; // no --model: pi uses its default (here: it fails)
  auto res = f.run();
  CHECK_FALSE(res.ok);
  CHECK(contains(res.error, "unexpected model default")); // pi's own error
  CHECK(contains(res.error, "agent executor has no model: set `model:`"));
  CHECK_EQ(f.calls(), 1);
}
