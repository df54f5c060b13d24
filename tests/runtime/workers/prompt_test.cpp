#include "runtime/workers/prompt.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <doctest/doctest.h>

using namespace crew;
namespace fs = std::filesystem;

namespace {

prompt_context sample_context() {
  prompt_context ctx;
  ctx.run_id = "team_20240101_abc";
  ctx.team = "implementation";
  ctx.workflow = "default";
  ctx.state_root = "/p/.crew/state/runs/team_20240101_abc";
  ctx.artifacts_root = "/p/.crew/artifacts/team_20240101_abc";
  ctx.events_path = "/p/.crew/state/runs/team_20240101_abc/events.jsonl";
  ctx.task_id = "02_build";
  ctx.task_cwd = "/p";
  ctx.goal = "ship it";
  ctx.step_id = "build";
  ctx.role = "executor";
  ctx.agent = "executor";
  ctx.task_text = "Implement {goal} carefully.";
  return ctx;
}

size_t pos_of(const std::string& text, const std::string& needle) {
  auto pos = text.find(needle);
  REQUIRE_MESSAGE(pos != std::string::npos, "missing: ", needle);
  return pos;
}

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path()
         / ("crew-prompt-test-" + std::to_string(::getpid()) + "-" + name);
}

} // namespace

TEST_CASE("substitute_goal replaces every {goal} and nothing else") {
  CHECK_EQ(substitute_goal("do {goal} then {goal}", "X"), "do X then X");
  CHECK_EQ(substitute_goal("{goal}{goal}", "ab"), "abab");
  CHECK_EQ(substitute_goal("no placeholder", "X"), "no placeholder");
  CHECK_EQ(substitute_goal("", "X"), "");
  CHECK_EQ(substitute_goal("{Goal} {goals} {team} {goal", "X"),
           "{Goal} {goals} {team} {goal");
  CHECK_EQ(substitute_goal("{{goal}}", "X"), "{X}");
  // The goal itself is not rescanned.
  CHECK_EQ(substitute_goal("{goal}", "{goal}!"), "{goal}!");
}

TEST_CASE("render_prompt emits the sections in order") {
  auto ctx = sample_context();
  auto text = render_prompt(ctx);
  CHECK(text.starts_with("# crew Worker Runtime Context\nRun ID: "
                         "team_20240101_abc\nTeam: implementation\n"));
  auto order = {pos_of(text, "# crew Worker Runtime Context"),
                pos_of(text, "Run ID: team_20240101_abc\n"),
                pos_of(text, "Team: implementation\n"),
                pos_of(text, "Workflow: default\n"),
                pos_of(text, "State root: /p/.crew/state/runs/"),
                pos_of(text, "Artifacts root: /p/.crew/artifacts/"),
                pos_of(text, "Events path: /p/.crew/state/runs/"),
                pos_of(text, "Task ID: 02_build\n"),
                pos_of(text, "Task cwd: /p\n"),
                pos_of(text, "Workspace mode: single\n\nGoal:\nship it\n"),
                pos_of(text, "Step: build\n"),
                pos_of(text, "Role: executor\n"),
                pos_of(text, "Protocol:\n- "),
                pos_of(text, "\nTask:\nImplement ship it carefully.")};
  CHECK(std::is_sorted(order.begin(), order.end()));
  CHECK(text.ends_with("Task:\nImplement ship it carefully."));
  CHECK(text.find("# Dependency Outputs") == std::string::npos);
  // Four protocol bullets.
  auto protocol = text.substr(pos_of(text, "Protocol:"));
  protocol = protocol.substr(0, protocol.find("\n\n"));
  size_t bullets = 0;
  for (size_t p = protocol.find("\n- "); p != std::string::npos;
       p = protocol.find("\n- ", p + 1))
    ++bullets;
  CHECK_EQ(bullets, 4u);
}

TEST_CASE("render_prompt lists dependency outputs before the task") {
  auto ctx = sample_context();
  ctx.deps.push_back({"01_plan", "Plan the work", "completed",
                      "/p/.crew/artifacts/r/results/01_plan.md",
                      "the plan text"});
  ctx.deps.push_back({"01_scan", "Scan", "failed", "", ""});
  auto text = render_prompt(ctx);
  auto deps = pos_of(text, "# Dependency Outputs\n");
  auto first = pos_of(text, "## 01_plan (Plan the work)\nStatus: completed\n"
                            "Result artifact: /p/.crew/artifacts/r/results/"
                            "01_plan.md\nthe plan text\n");
  auto second = pos_of(text, "## 01_scan (Scan)\nStatus: failed\n"
                             "Result artifact: (none)\n(no result output)\n");
  auto task = pos_of(text, "\nTask:\n");
  CHECK(pos_of(text, "Protocol:") < deps);
  CHECK(deps < first);
  CHECK(first < second);
  CHECK(second < task);
}

TEST_CASE("read_result_excerpt returns small files whole") {
  auto path = temp_file("small.md");
  {
    std::ofstream out{path};
    out << "short result\n";
  }
  CHECK_EQ(read_result_excerpt(path), "short result\n");
  CHECK_EQ(read_result_excerpt(path, 13), "short result\n");
  fs::remove(path);
}

TEST_CASE("read_result_excerpt truncates large files") {
  auto path = temp_file("large.md");
  {
    std::ofstream out{path, std::ios::binary};
    out << std::string(30000, 'r');
  }
  auto text = read_result_excerpt(path);
  CHECK_EQ(text, std::string(24000, 'r') + "\n...(truncated 6000 bytes)");
  CHECK_EQ(read_result_excerpt(path, 10),
           std::string(10, 'r') + "\n...(truncated 29990 bytes)");
  fs::remove(path);
}

TEST_CASE("read_result_excerpt does not split a UTF-8 sequence") {
  auto path = temp_file("utf8.md");
  {
    std::ofstream out{path, std::ios::binary};
    out << "ab\xC3\xA9z"; // "abéz": é is two bytes
  }
  CHECK_EQ(read_result_excerpt(path, 3), "ab\n...(truncated 3 bytes)");
  CHECK_EQ(read_result_excerpt(path, 4), "ab\xC3\xA9\n...(truncated 1 bytes)");
  fs::remove(path);
}

TEST_CASE("read_result_excerpt returns empty for a missing file") {
  CHECK_EQ(read_result_excerpt("/nonexistent/crew/result.md"), "");
  CHECK_EQ(read_result_excerpt(fs::temp_directory_path()), "");
}
