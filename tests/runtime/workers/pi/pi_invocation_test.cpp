#include "runtime/workers/pi/pi_invocation.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "runtime/workers/pi/model_routing.hpp"
#include "runtime/workers/pi/pi_stream.hpp"

using namespace crew;
namespace fs = std::filesystem;

namespace {

using strings = std::vector<std::string>;

env_lookup map_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name)
           -> std::optional<std::string> {
    if (auto i = vars.find(std::string{name}); i != vars.end())
      return i->second;
    return std::nullopt;
  };
}

// A scratch directory removed at the end of the test.
struct scratch_dir {
  fs::path root = fs::temp_directory_path()
                  / ("crew-pi-invocation-test-" + std::to_string(::getpid()));

  scratch_dir() {
    fs::remove_all(root);
    fs::create_directories(root);
  }

  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }

  fs::path file(const std::string& rel, bool executable) const {
    auto path = root / rel;
    fs::create_directories(path.parent_path());
    std::ofstream{path} << "#!/bin/sh\nexit 0\n";
    fs::permissions(path,
                    executable ? fs::perms::owner_all
                               : fs::perms::owner_read | fs::perms::owner_write);
    return path;
  }
};

pi_outcome run_mock(std::string_view mode, std::string_view agent,
                    std::string_view prompt, pi_stream& stream) {
  auto mock = pi_mock(mode, agent, prompt);
  REQUIRE(mock);
  stream.feed(mock->stdout_text);
  stream.finish();
  return stream.outcome(mock->exit_code, mock->stderr_text);
}

} // namespace

TEST_CASE("pi_invocation: json mode arguments") {
  pi_arg_options options;
  options.model = "fake/fake-reasoner";
  options.thinking = "high";
  options.tools = {"read", "bash"};
  options.system_prompt_file = "/tmp/crew-x/executor.md";
  CHECK_EQ(pi_args(options),
           strings{"--mode", "json", "-p", "--no-session", "--model",
                   "fake/fake-reasoner:high", "--tools", "read,bash",
                   "--no-skills", "--append-system-prompt",
                   "/tmp/crew-x/executor.md"});

  // Defaults: no model, tools or system prompt; and never a prompt argument.
  CHECK_EQ(pi_args({}),
           strings{"--mode", "json", "-p", "--no-session", "--no-skills"});
}

TEST_CASE("pi_invocation: rpc mode, extensions and inheritance flags") {
  pi_arg_options options;
  options.mode = pi_output_mode::rpc;
  options.model = "fake/fake-model:low";
  options.thinking = "high"; // the model already names a level
  options.extensions = strings{};
  options.inherit_skills = true;
  options.inherit_project_context = false;
  options.system_prompt_file = "/tmp/s.md";
  options.replace_system_prompt = true;
  CHECK_EQ(pi_args(options),
           strings{"--mode", "rpc", "--no-session", "--model",
                   "fake/fake-model:low", "--no-extensions",
                   "--no-context-files", "--system-prompt", "/tmp/s.md"});

  options.extensions = strings{"/x/a.ts", "/x/b.ts"};
  options.system_prompt_file.clear();
  options.inherit_project_context = true;
  CHECK_EQ(pi_args(options),
           strings{"--mode", "rpc", "--no-session", "--model",
                   "fake/fake-model:low", "--no-extensions", "--extension",
                   "/x/a.ts", "--extension", "/x/b.ts"});
}

TEST_CASE("pi_invocation: worker environment") {
  CHECK_EQ(pi_env(0, 2, "executor", true, false),
           strings{"PI_CREW_DEPTH=1", "PI_CREW_MAX_DEPTH=2",
                   "PI_CREW_ROLE=executor",
                   "PI_CREW_INHERIT_PROJECT_CONTEXT=1",
                   "PI_CREW_INHERIT_SKILLS=0", "PI_TEAMS_DEPTH=1",
                   "PI_TEAMS_MAX_DEPTH=2", "PI_TEAMS_ROLE=executor",
                   "PI_TEAMS_INHERIT_PROJECT_CONTEXT=1",
                   "PI_TEAMS_INHERIT_SKILLS=0"});
  auto nested = pi_env(3, 5, "reviewer", false, true);
  CHECK_EQ(nested[0], "PI_CREW_DEPTH=4");
  CHECK_EQ(nested[1], "PI_CREW_MAX_DEPTH=5");
  CHECK_EQ(nested[3], "PI_CREW_INHERIT_PROJECT_CONTEXT=0");
  CHECK_EQ(nested[4], "PI_CREW_INHERIT_SKILLS=1");
}

TEST_CASE("pi_invocation: depth guard") {
  auto guard = check_depth(map_env({}), std::nullopt);
  CHECK_EQ(guard.depth, 0);
  CHECK_EQ(guard.max_depth, 2);
  CHECK_FALSE(guard.blocked());
  CHECK(guard.error().empty());

  guard = check_depth(map_env({{"PI_CREW_DEPTH", "2"}}), std::nullopt);
  CHECK(guard.blocked());
  CHECK_EQ(guard.error(),
           "pi-crew depth guard blocked child worker: depth 2 >= max 2");

  // PI_CREW_* wins over PI_TEAMS_*; invalid values count as unset.
  guard = check_depth(map_env({{"PI_CREW_DEPTH", "1"}, {"PI_TEAMS_DEPTH", "5"}}),
                      std::nullopt);
  CHECK_EQ(guard.depth, 1);
  guard = check_depth(map_env({{"PI_CREW_DEPTH", "abc"}, {"PI_TEAMS_DEPTH", "3"}}),
                      std::nullopt);
  CHECK_EQ(guard.depth, 3);
  guard = check_depth(map_env({{"PI_CREW_DEPTH", "1x"}}), std::nullopt);
  CHECK_EQ(guard.depth, 0);

  // max: env, then the config default, then 2.
  guard = check_depth(map_env({{"PI_CREW_DEPTH", "3"}}), 5u);
  CHECK_EQ(guard.max_depth, 5);
  CHECK_FALSE(guard.blocked());
  guard = check_depth(map_env({{"PI_CREW_DEPTH", "3"}, {"PI_TEAMS_MAX_DEPTH", "3"}}), 5u);
  CHECK_EQ(guard.max_depth, 3);
  CHECK_EQ(guard.error(),
           "pi-crew depth guard blocked child worker: depth 3 >= max 3");
  guard = check_depth(map_env({{"PI_CREW_MAX_DEPTH", "-1"}, {"PI_TEAMS_MAX_DEPTH", " 4 "}}),
                      std::nullopt);
  CHECK_EQ(guard.max_depth, 4);
  guard = check_depth(map_env({{"PI_CREW_MAX_DEPTH", "0"}}), 5u);
  CHECK(guard.blocked()); // max 0 forbids any worker
}

TEST_CASE("pi_invocation: final drain") {
  CHECK_EQ(final_drain_ms(map_env({})), default_final_drain_ms);
  CHECK_EQ(default_final_drain_ms, 5000u);
  CHECK_EQ(final_drain_ms(map_env({{"CREW_PI_FINAL_DRAIN_MS", "250"}})), 250u);
  CHECK_EQ(final_drain_ms(map_env({{"CREW_PI_FINAL_DRAIN_MS", "0"}})), 0u);
  CHECK_EQ(final_drain_ms(map_env({{"CREW_PI_FINAL_DRAIN_MS", "soon"}})),
           default_final_drain_ms);
  CHECK_EQ(final_drain_ms(map_env({{"CREW_PI_FINAL_DRAIN_MS", "-5"}})),
           default_final_drain_ms);
}

TEST_CASE("pi_invocation: pi on PATH") {
  scratch_dir dir;
  auto bin = dir.root / "bin";
  auto other = dir.root / "other";
  fs::create_directories(other);
  auto pi = dir.file("bin/pi", true);

  auto cmd = pi_binary(map_env({{"PATH", other.string() + ":" + bin.string()}}));
  CHECK(cmd.usable());
  CHECK_EQ(cmd.argv, strings{pi.string()});
  CHECK_EQ(find_on_path("pi", "::" + bin.string()), pi.string());
  CHECK_EQ(find_on_path(pi.string(), ""), pi.string()); // a path is taken as is
  CHECK(find_on_path("pi", other.string()).empty());

  cmd = pi_binary(map_env({{"PATH", other.string()}}));
  CHECK_FALSE(cmd.usable());
  CHECK_EQ(cmd.problem,
           "pi not found on PATH (install @mariozechner/pi-coding-agent or "
           "set PI_TEAMS_PI_BIN)");

  auto unusable = dir.file("other/pi", false);
  cmd = pi_binary(map_env({{"PATH", other.string()}}));
  CHECK_FALSE(cmd.usable());
  CHECK_EQ(cmd.problem, "pi on PATH is not an executable file: " + unusable.string());
}

TEST_CASE("pi_invocation: PI_TEAMS_PI_BIN") {
  scratch_dir dir;
  auto bin = dir.root / "bin";
  auto node = dir.file("bin/node", true);
  auto script = dir.file("pkg/dist/cli.js", false);
  auto shim = dir.file("pkg/pi-shim", true);
  auto plain = dir.file("pkg/readme", false);

  auto cmd = pi_binary(map_env({{"PI_TEAMS_PI_BIN", script.string()},
                                {"PATH", bin.string()}}));
  CHECK(cmd.usable());
  CHECK_EQ(cmd.argv, strings{node.string(), script.string()});

  cmd = pi_binary(map_env({{"PI_TEAMS_PI_BIN", script.string()}, {"PATH", ""}}));
  CHECK_FALSE(cmd.usable());
  CHECK_EQ(cmd.problem, "node not found on PATH (needed to run PI_TEAMS_PI_BIN="
                          + script.string() + ")");

  cmd = pi_binary(map_env({{"PI_TEAMS_PI_BIN", shim.string()}}));
  CHECK(cmd.usable());
  CHECK_EQ(cmd.argv, strings{shim.string()});

  cmd = pi_binary(map_env({{"PI_TEAMS_PI_BIN", plain.string()}}));
  CHECK_EQ(cmd.problem,
           "PI_TEAMS_PI_BIN=" + plain.string() + " is not an executable file");

  auto missing = (dir.root / "nope.mjs").string();
  cmd = pi_binary(map_env({{"PI_TEAMS_PI_BIN", missing}, {"PATH", bin.string()}}));
  CHECK_EQ(cmd.problem, "PI_TEAMS_PI_BIN=" + missing + " does not exist");

  // An empty value is the same as unset.
  cmd = pi_binary(map_env({{"PI_TEAMS_PI_BIN", " "}, {"PATH", bin.string()}}));
  CHECK_EQ(cmd.argv, strings{"pi"});
  CHECK_FALSE(cmd.usable());
}

TEST_CASE("pi_invocation: process_env reads the real environment") {
  auto env = process_env();
  CHECK(env("PATH").has_value());
  CHECK_FALSE(env("CREW_PI_INVOCATION_TEST_SURELY_UNSET").has_value());
}

TEST_CASE("pi_invocation: mock modes") {
  CHECK_FALSE(pi_mock("", "executor", "x"));

  auto success = pi_mock("success", "executor", "x");
  REQUIRE(success);
  CHECK_EQ(success->exit_code, 0);
  CHECK_EQ(success->stdout_text, "Mock child Pi success for executor\n");
  CHECK(success->stderr_text.empty());

  auto json = pi_mock("json-success", "explorer", "x");
  REQUIRE(json);
  CHECK_EQ(json->exit_code, 0);
  // Byte for byte what pi-crew's JSON.stringify prints.
  CHECK_EQ(json->stdout_text,
           R"({"type":"message","message":{"role":"assistant","content":[{"type":"text","text":"Mock JSON success for explorer"}]}})"
           "\n"
           R"({"type":"message_end","usage":{"input":10,"output":5,"cost":0.001,"turns":1}})"
           "\n");

  auto retryable = pi_mock("retryable-failure", "executor", "x");
  REQUIRE(retryable);
  CHECK_EQ(retryable->exit_code, 1);
  CHECK(retryable->stdout_text.empty());
  CHECK_EQ(retryable->stderr_text, "rate limit: mock failure");
  CHECK(is_retryable_model_error(retryable->stderr_text));

  auto other = pi_mock("boom", "executor", "x");
  REQUIRE(other);
  CHECK_EQ(other->exit_code, 1);
  CHECK_EQ(other->stderr_text, "mock failure: boom");
  CHECK_FALSE(is_retryable_model_error(other->stderr_text));
}

TEST_CASE("pi_invocation: mock output goes through pi_stream like a real run") {
  SUBCASE("success: plain text") {
    pi_stream stream;
    auto outcome = run_mock("success", "executor", "x", stream);
    CHECK(outcome.success);
    CHECK_EQ(outcome.result, "Mock child Pi success for executor");
    CHECK_EQ(outcome.json_events, 0);
  }
  SUBCASE("json-success: two events with usage") {
    pi_stream stream;
    auto outcome = run_mock("json-success", "explorer", "x", stream);
    CHECK(outcome.success);
    CHECK_EQ(outcome.result, "Mock JSON success for explorer");
    CHECK_EQ(outcome.json_events, 2);
    CHECK_EQ(outcome.usage.input, 10);
    CHECK_EQ(outcome.usage.output, 5);
    CHECK_EQ(outcome.usage.cost, doctest::Approx(0.001));
    CHECK_EQ(outcome.usage.turns, 1);
    CHECK(stream.final_answer_seen());
  }
  SUBCASE("retryable-failure") {
    pi_stream stream;
    auto outcome = run_mock("retryable-failure", "executor", "x", stream);
    CHECK_FALSE(outcome.success);
    CHECK_EQ(outcome.exit_code, 1);
    CHECK_EQ(outcome.error, "rate limit: mock failure");
  }
  SUBCASE("adaptive-plan without the marker answers like json-success") {
    pi_stream stream;
    auto outcome = run_mock("adaptive-plan", "planner", "plan it", stream);
    CHECK_EQ(outcome.result, "Mock JSON success for planner");
  }
  SUBCASE("adaptive-plan with the marker answers with a plan") {
    pi_stream stream;
    auto outcome = run_mock("adaptive-plan", "planner",
                            "Reply between ADAPTIVE_PLAN_JSON_START and "
                            "ADAPTIVE_PLAN_JSON_END.",
                            stream);
    CHECK(outcome.success);
    const auto& text = outcome.result;
    REQUIRE(text.starts_with("Adaptive mock plan\nADAPTIVE_PLAN_JSON_START\n"));
    REQUIRE(text.ends_with("\nADAPTIVE_PLAN_JSON_END"));
    auto begin = text.find('{');
    auto end = text.rfind('}');
    auto plan = nlohmann::json::parse(text.substr(begin, end - begin + 1));
    std::vector<std::pair<std::string, strings>> phases;
    for (const auto& phase : plan["phases"]) {
      strings roles;
      for (const auto& task : phase["tasks"]) {
        roles.push_back(task["role"].get<std::string>());
        CHECK_FALSE(task["task"].get<std::string>().empty());
      }
      phases.emplace_back(phase["name"].get<std::string>(), roles);
    }
    CHECK_EQ(phases,
             std::vector<std::pair<std::string, strings>>{
               {"research", {"explorer", "analyst", "planner"}},
               {"build", {"executor"}},
               {"check", {"reviewer", "test-engineer", "writer"}}});
    CHECK_NE(text.find(R"({"role":"explorer","task":"Explore adaptive target"})"),
             std::string::npos);
  }
}
