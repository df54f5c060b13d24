#include "config/builtin_resources.hpp"
#include "config/validate.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

using namespace crew;

namespace {

resource_set builtins() {
  return discover_resources({}, {});
}

std::vector<std::string> step_summary(const workflow_def& w) {
  std::vector<std::string> out;
  for (auto& s : w.steps) {
    std::string deps;
    for (auto& d : s.depends_on)
      deps += (deps.empty() ? "" : ",") + d;
    out.push_back(s.id + "[" + s.role + "]<" + deps + ">");
  }
  return out;
}

} // namespace

TEST_CASE("builtin: every resources/ file is embedded, sorted by path") {
  auto files = builtin_resource_files();
  CHECK_EQ(files.size(), 27u);
  CHECK(std::is_sorted(files.begin(), files.end(),
                       [](auto& x, auto& y) { return x.path < y.path; }));
  for (auto& f : files)
    CHECK_MESSAGE(f.content.rfind("---\n", 0) == 0, f.path);
}

TEST_CASE("builtin: 10 pi agents + 3 demo agents, 7 teams, 7 workflows") {
  auto set = builtins();
  CHECK_EQ(set.agents.size(), 13u);
  CHECK_EQ(set.teams.size(), 7u);
  CHECK_EQ(set.workflows.size(), 7u);
  for (auto name : {"default", "fast-fix", "implementation", "parallel-research",
                    "research", "review", "demo"}) {
    CHECK_MESSAGE(set.find_team(name) != nullptr, name);
    CHECK_MESSAGE(set.find_workflow(name) != nullptr, name);
  }
}

TEST_CASE("builtin: all teams and workflows validate without issues") {
  auto issues = validate_resources(builtins());
  for (auto& i : issues)
    FAIL_CHECK(i.to_string());
  CHECK(issues.empty());
}

TEST_CASE("builtin: agents carry the catalogue's models and tools") {
  auto set = builtins();
  std::vector<std::string> ro{"read", "grep", "find", "ls"};
  auto with = [&](std::vector<std::string> extra) {
    auto v = ro;
    v.insert(v.end(), extra.begin(), extra.end());
    return v;
  };
  struct row {
    const char* name;
    const char* model;
    std::vector<std::string> tools;
  };
  std::vector<row> rows{
    {"analyst", "claude-sonnet-4-5", ro},
    {"critic", "claude-sonnet-4-5", ro},
    {"planner", "claude-sonnet-4-5", ro},
    {"explorer", "claude-haiku-4-5", ro},
    {"writer", "claude-haiku-4-5", with({"edit", "write"})},
    {"executor", "claude-sonnet-4-5", with({"bash", "edit", "write"})},
    {"test-engineer", "claude-sonnet-4-5", with({"bash", "edit", "write"})},
    {"reviewer", "claude-sonnet-4-5", with({"bash"})},
    {"security-reviewer", "claude-sonnet-4-5", with({"bash"})},
    {"verifier", "claude-sonnet-4-5", with({"bash"})},
  };
  for (auto& r : rows) {
    auto a = set.find_agent(r.name);
    REQUIRE_MESSAGE(a != nullptr, r.name);
    CHECK_EQ(a->model, r.model);
    CHECK_EQ(a->tools, r.tools);
    CHECK_FALSE(a->system_prompt_append);
    CHECK_FALSE(a->system_prompt.empty());
    CHECK(a->command.empty());
    CHECK_EQ(a->source, resource_source::builtin);
  }
}

TEST_CASE("builtin: teams have the catalogue's roles and maxConcurrency") {
  auto set = builtins();
  auto roles = [&](const char* team) {
    std::vector<std::string> out;
    for (auto& r : set.find_team(team)->roles) {
      CHECK_EQ(r.name, r.agent);
      out.push_back(r.name);
    }
    return out;
  };
  CHECK_EQ(set.find_team("default")->max_concurrency, 2u);
  CHECK_EQ(roles("default"), std::vector<std::string>{"explorer", "planner", "executor", "verifier"});
  CHECK_EQ(set.find_team("fast-fix")->max_concurrency, 1u);
  CHECK_EQ(roles("fast-fix"), std::vector<std::string>{"explorer", "executor", "verifier"});
  CHECK_EQ(set.find_team("implementation")->max_concurrency, 3u);
  CHECK_EQ(roles("implementation").size(), 10u);
  CHECK_EQ(set.find_team("parallel-research")->max_concurrency, 4u);
  CHECK_EQ(roles("research"), std::vector<std::string>{"explorer", "analyst", "writer"});
  CHECK_EQ(roles("review"), std::vector<std::string>{"explorer", "reviewer", "security-reviewer", "verifier"});
  for (auto& [name, team] : set.teams)
    CHECK_EQ(team.default_workflow, name);
}

TEST_CASE("builtin: workflows have the catalogue's steps and dependencies") {
  auto set = builtins();
  CHECK_EQ(step_summary(*set.find_workflow("default")),
           std::vector<std::string>{"explore[explorer]<>", "plan[planner]<explore>",
                                    "execute[executor]<plan>", "verify[verifier]<execute>"});
  CHECK_EQ(set.find_workflow("default")->steps[1].output, "plan.md");
  CHECK(set.find_workflow("default")->steps[3].verify);
  CHECK_EQ(step_summary(*set.find_workflow("implementation")),
           std::vector<std::string>{"assess[planner]<>"});
  CHECK_EQ(set.find_workflow("implementation")->steps[0].output, "adaptive-plan.json");
  auto& pr = *set.find_workflow("parallel-research");
  CHECK_EQ(pr.steps.size(), 7u);
  CHECK_EQ(pr.steps[5].depends_on.size(), 4u);
  CHECK_EQ(pr.steps[1].parallel_group, "explore");
  CHECK_EQ(step_summary(*set.find_workflow("review")),
           std::vector<std::string>{"explore[explorer]<>", "code-review[reviewer]<explore>",
                                    "security-review[security-reviewer]<explore>",
                                    "verify[verifier]<code-review,security-review>"});
  for (auto& [name, w] : set.workflows)
    for (auto& s : w.steps)
      CHECK_MESSAGE(s.task.find("{goal}") != std::string::npos, (name + "/" + s.id));
}

TEST_CASE("builtin: the demo crew is command-backed scout -> counter -> reporter") {
  auto set = builtins();
  auto& w = *set.find_workflow("demo");
  CHECK_EQ(w.max_concurrency, 2u);
  CHECK_EQ(step_summary(w),
           std::vector<std::string>{"scout[scout]<>", "counter[counter]<scout>",
                                    "reporter[reporter]<counter>"});
  auto& team = *set.find_team("demo");
  for (auto& role : team.roles) {
    auto agent = set.find_agent(role.agent);
    REQUIRE_MESSAGE(agent != nullptr, role.agent);
    CHECK_MESSAGE(!agent->command.empty(), role.agent);
  }
}

TEST_CASE("builtin: the demo commands do their job with /bin/sh") {
  namespace fs = std::filesystem;
  auto set = builtins();
  auto dir = fs::temp_directory_path()
             / ("crew_demo_test_" + std::to_string(std::random_device{}()));
  fs::create_directories(dir / "src");
  fs::create_directories(dir / ".crew");
  std::ofstream{dir / "src" / "a.cpp"} << "1\n2\n3\n";
  std::ofstream{dir / "README.md"} << "hi\n";
  std::ofstream{dir / ".crew" / "hidden.txt"} << "x\n";
  auto run = [&](const char* agent, const std::string& input) {
    auto in = dir.string() + "/.crew/in.txt";
    std::ofstream{in} << input;
    auto cmd = "cd '" + dir.string() + "' && CREW_RUN_ID=r1 CREW_TASK_ID=t1 "
               + "CREW_ATTEMPT=1 /bin/sh -c '"
               // escape single quotes of the command for the outer shell
               + [&] {
                   std::string c = set.find_agent(agent)->command;
                   std::string out;
                   for (auto ch : c)
                     out += ch == '\'' ? std::string{"'\\''"} : std::string(1, ch);
                   return out;
                 }()
               + "' < '" + in + "'";
    std::string result;
    if (auto p = popen(cmd.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        result.append(buf, n);
      CHECK_EQ(pclose(p), 0);
    }
    return result;
  };
  auto scout = run("demo-scout", "prompt");
  CHECK_NE(scout.find("./src/a.cpp"), std::string::npos);
  CHECK_EQ(scout.find(".crew"), std::string::npos);
  // The counter counts the files its dependency (the scout) listed.
  auto counter = run("demo-counter", "# Context\n\n# Dependency Outputs\n\n## 01_scout\n"
                                       + scout + "\n# Task\n./not-listed.txt\n");
  CHECK_NE(counter.find("cpp\t1\t3"), std::string::npos);
  CHECK_NE(counter.find("md\t1\t1"), std::string::npos);
  auto report = run("demo-reporter", "# Context\n\n# Dependency Outputs\n\n## 02_counter\n"
                                     + counter + "\n# Task Packet\nx\t1\t1\n");
  CHECK_NE(report.find("| cpp | 1 | 3 |"), std::string::npos);
  CHECK_NE(report.find("**Total:** 2 files, 4 lines."), std::string::npos);
  CHECK_NE(report.find("Run `r1`"), std::string::npos);
  std::error_code ec;
  fs::remove_all(dir, ec);
}
