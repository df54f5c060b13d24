#include "config/resources.hpp"

#include "messages/errors.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

using namespace crew;
namespace fs = std::filesystem;

namespace {

/// A unique temporary directory, removed on destruction.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path()
           / ("crew_config_test_" + std::to_string(rd()) + "_"
              + std::to_string(std::chrono::steady_clock::now()
                                 .time_since_epoch()
                                 .count()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const fs::path& rel, std::string_view content) const {
    auto file = path / rel;
    fs::create_directories(file.parent_path());
    std::ofstream out{file, std::ios::binary};
    out << content;
  }
};

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const input_error& e) {
    return e.what();
  }
  return "<no error>";
}

} // namespace

// -- agents -------------------------------------------------------------------

TEST_CASE("agent: reads every supported key") {
  auto a = parse_agent("---\nname: Scout\ndescription: finds things\n"
                       "model: anthropic/claude-x\nfallbackModels: m2, m3, m2\n"
                       "thinking: high\ntools: read, bash\n"
                       "systemPromptMode: append\ncommand: ls -1 | head\n"
                       "maxAttempts: 4\ntimeoutMs: 1500\n---\n\n  Be brief.  \n",
                       "/p/.crew/agents/scout.md", resource_source::project);
  CHECK_EQ(a.name, "Scout");
  CHECK_EQ(a.description, "finds things");
  CHECK_EQ(a.model, "anthropic/claude-x");
  CHECK_EQ(a.fallback_models, std::vector<std::string>{"m2", "m3"});
  CHECK_EQ(a.thinking, "high");
  CHECK_EQ(a.tools, std::vector<std::string>{"read", "bash"});
  CHECK(a.system_prompt_append);
  CHECK_EQ(a.command, "ls -1 | head");
  CHECK_EQ(a.max_attempts, 4u);
  CHECK_EQ(a.timeout_ms, 1500u);
  CHECK_EQ(a.system_prompt, "Be brief.");
  CHECK_EQ(a.source, resource_source::project);
  CHECK_EQ(a.path, "/p/.crew/agents/scout.md");
  CHECK_FALSE(a.disabled);
}

TEST_CASE("agent: defaults name from the file and description to pi-crew's text") {
  auto a = parse_agent("You are helpful.", "/x/agents/helper.md",
                       resource_source::user);
  CHECK_EQ(a.name, "helper");
  CHECK_EQ(a.description, "No description provided.");
  CHECK_EQ(a.system_prompt, "You are helpful.");
  CHECK_FALSE(a.system_prompt_append);
  CHECK(a.command.empty());
  CHECK_EQ(a.max_attempts, 0u);
  CHECK_EQ(a.timeout_ms, 0u);
}

TEST_CASE("agent: any systemPromptMode other than append means replace") {
  auto a = parse_agent("---\nsystemPromptMode: Append\n---\n", "a.md",
                       resource_source::user);
  CHECK_FALSE(a.system_prompt_append);
}

TEST_CASE("agent: disabled: true and enabled: false both disable") {
  CHECK(parse_agent("---\ndisabled: true\n---\n", "a.md", resource_source::user).disabled);
  CHECK(parse_agent("---\nenabled: false\n---\n", "a.md", resource_source::user).disabled);
  CHECK_FALSE(parse_agent("---\ndisabled: yes\n---\n", "a.md", resource_source::user).disabled);
}

TEST_CASE("agent: a non-integer maxAttempts names the file, line and key") {
  auto msg = error_of([] {
    parse_agent("---\nname: x\nmaxAttempts: three\n---\n", "/p/agents/x.md",
                resource_source::project);
  });
  CHECK_EQ(msg, "/p/agents/x.md:3: maxAttempts: must be an integer between 1 "
                "and 100 (got 'three')");
}

TEST_CASE("agent: a negative or fractional timeoutMs is rejected") {
  CHECK_NE(error_of([] {
             parse_agent("---\ntimeoutMs: -5\n---\n", "/p/agents/x.md",
                         resource_source::project);
           }).find("/p/agents/x.md:2: timeoutMs: must be an integer"),
           std::string::npos);
  CHECK_NE(error_of([] {
             parse_agent("---\ntimeoutMs: 1.5\n---\n", "/p/agents/x.md",
                         resource_source::project);
           }).find("timeoutMs"),
           std::string::npos);
}

// -- teams --------------------------------------------------------------------

TEST_CASE("team: parses frontmatter and role lines with agent= tokens") {
  auto t = parse_team("---\ndescription: d\nworkflow: wf\nworkspaceMode: worktree\n"
                      "maxConcurrency: 3\n---\nRoles:\n\n"
                      "- lead: agent=planner plans the work\n"
                      "  - coder: writes code: carefully\n"
                      "- solo\n"
                      "-   : no name, ignored\n"
                      "not a role line\n",
                      "/p/teams/alpha.team.md", resource_source::project);
  CHECK_EQ(t.name, "alpha");
  CHECK_EQ(t.description, "d");
  CHECK_EQ(t.default_workflow, "wf");
  CHECK_EQ(t.workspace_mode, "worktree");
  CHECK_EQ(t.max_concurrency, 3u);
  REQUIRE_EQ(t.roles.size(), 3u);
  CHECK_EQ(t.roles[0].name, "lead");
  CHECK_EQ(t.roles[0].agent, "planner");
  CHECK_EQ(t.roles[0].description, "plans the work");
  CHECK_EQ(t.roles[1].name, "coder");
  CHECK_EQ(t.roles[1].agent, "coder");
  CHECK_EQ(t.roles[1].description, "writes code: carefully");
  CHECK_EQ(t.roles[2].name, "solo");
  CHECK_EQ(t.roles[2].agent, "solo");
}

TEST_CASE("team: defaultWorkflow wins over workflow and workspaceMode defaults to single") {
  auto t = parse_team("---\nworkflow: a\ndefaultWorkflow: b\n---\n", "t.team.md",
                      resource_source::user);
  CHECK_EQ(t.default_workflow, "b");
  CHECK_EQ(t.workspace_mode, "single");
  CHECK_EQ(t.max_concurrency, 0u);
}

TEST_CASE("team: a bad maxConcurrency or workspaceMode names file, line and key") {
  CHECK_EQ(error_of([] {
             parse_team("---\nmaxConcurrency: 0\n---\n", "/p/teams/t.team.md",
                        resource_source::project);
           }),
           "/p/teams/t.team.md:2: maxConcurrency: must be an integer between "
           "1 and 1024 (got '0')");
  CHECK_EQ(error_of([] {
             parse_team("---\nname: t\nworkspaceMode: shared\n---\n",
                        "/p/teams/t.team.md", resource_source::project);
           }),
           "/p/teams/t.team.md:3: workspaceMode: must be 'single' or "
           "'worktree' (got 'shared')");
}

// -- workflows ----------------------------------------------------------------

TEST_CASE("workflow: config lines precede the task text of a step") {
  auto w = parse_workflow("---\ndescription: two steps\nmaxConcurrency: 2\n---\n"
                          "intro text is ignored\n"
                          "## a\n"
                          "role: explorer\n"
                          "model: m/x\n"
                          "reads: notes.md, plan.md\n"
                          "\n"
                          "Look around for {goal}.\n"
                          "Note: this line is task text, not config.\n"
                          "\n"
                          "## b\n"
                          "dependsOn: a\n"
                          "parallelGroup: g\n"
                          "output: result.md\n"
                          "verify: true\n"
                          "Do it.\n",
                          "/p/workflows/two.workflow.md", resource_source::project);
  CHECK_EQ(w.name, "two");
  CHECK_EQ(w.description, "two steps");
  CHECK_EQ(w.max_concurrency, 2u);
  REQUIRE_EQ(w.steps.size(), 2u);
  auto& a = w.steps[0];
  CHECK_EQ(a.id, "a");
  CHECK_EQ(a.role, "explorer");
  CHECK_EQ(a.model, "m/x");
  CHECK_EQ(a.reads, std::vector<std::string>{"notes.md", "plan.md"});
  CHECK_EQ(a.task, "Look around for {goal}.\nNote: this line is task text, not config.");
  CHECK_EQ(a.line, 6u);
  CHECK_EQ(a.task_line, 11u); // after the config lines and a blank one
  auto& b = w.steps[1];
  CHECK_EQ(b.role, "b");
  CHECK_EQ(b.depends_on, std::vector<std::string>{"a"});
  CHECK_EQ(b.parallel_group, "g");
  CHECK_EQ(b.output, "result.md");
  CHECK(b.verify);
  CHECK_EQ(b.task, "Do it.");
  CHECK_EQ(b.line, 14u);
  CHECK_EQ(b.task_line, 19u);
}

TEST_CASE("workflow: a step without text defaults to the task key, else {goal}") {
  auto w = parse_workflow("## a\ntask: summarize {goal}\n\n## b\nrole: r\n",
                          "w.workflow.md", resource_source::user);
  REQUIRE_EQ(w.steps.size(), 2u);
  CHECK_EQ(w.steps[0].task, "summarize {goal}");
  CHECK_EQ(w.steps[1].task, "{goal}");
  CHECK_EQ(w.steps[0].task_line, 2u); // the task: line
  CHECK_EQ(w.steps[1].task_line, 4u); // the heading
  CHECK_EQ(w.name, "w");
}

TEST_CASE("workflow: output: false disables output and reads: false clears reads") {
  auto w = parse_workflow("## a\noutput: false\nreads: false\n", "w.workflow.md",
                          resource_source::user);
  REQUIRE_EQ(w.steps.size(), 1u);
  CHECK(w.steps[0].output_disabled);
  CHECK(w.steps[0].output.empty());
  CHECK(w.steps[0].reads.empty());
}

TEST_CASE("workflow: a blank line right after the heading ends the config") {
  auto w = parse_workflow("## a\n\nrole: writer\n", "w.workflow.md",
                          resource_source::user);
  REQUIRE_EQ(w.steps.size(), 1u);
  CHECK_EQ(w.steps[0].role, "a");
  CHECK_EQ(w.steps[0].task, "role: writer");
}

TEST_CASE("workflow: ### headings stay in the task text") {
  auto w = parse_workflow("## a\n### Details\nmore\n", "w.workflow.md",
                          resource_source::user);
  REQUIRE_EQ(w.steps.size(), 1u);
  CHECK_EQ(w.steps[0].task, "### Details\nmore");
}

TEST_CASE("workflow: a bad maxConcurrency names file, line and key") {
  CHECK_EQ(error_of([] {
             parse_workflow("---\nmaxConcurrency: many\n---\n## a\n",
                            "/p/w.workflow.md", resource_source::project);
           }),
           "/p/w.workflow.md:2: maxConcurrency: must be an integer between 1 "
           "and 1024 (got 'many')");
}

// -- discovery ----------------------------------------------------------------

TEST_CASE("discovery: builtin < user < project, each file named by its path") {
  temp_dir tmp;
  auto user = tmp.path / "user";
  auto project = tmp.path / "project" / ".crew";
  tmp.write("user/agents/explorer.md", "---\nname: explorer\nmodel: user-model\n---\n");
  tmp.write("user/agents/helper.md", "---\nname: helper\nmodel: u\n---\n");
  tmp.write("project/.crew/agents/helper.md", "---\nname: helper\nmodel: p\n---\n");
  tmp.write("user/teams/mine.team.md", "---\ndefaultWorkflow: mine\n---\n- explorer\n");
  tmp.write("project/.crew/workflows/mine.workflow.md", "## explore\n");
  tmp.write("project/.crew/workflows/default.workflow.md", "## only\nrole: explorer\n");
  // files of other kinds in a directory are ignored
  tmp.write("project/.crew/agents/not-an-agent.team.md", "---\nname: oops\n---\n");
  tmp.write("project/.crew/teams/readme.md", "---\nname: oops\n---\n");
  auto set = discover_resources(project, user);
  REQUIRE(set.find_agent("explorer") != nullptr);
  CHECK_EQ(set.find_agent("explorer")->model, "user-model");
  CHECK_EQ(set.find_agent("explorer")->source, resource_source::user);
  CHECK_EQ(set.find_agent("helper")->model, "p");
  CHECK_EQ(set.find_agent("helper")->path,
           (project / "agents" / "helper.md").string());
  CHECK(set.find_agent("oops") == nullptr);
  CHECK(set.find_team("oops") == nullptr);
  REQUIRE(set.find_team("mine") != nullptr);
  CHECK_EQ(set.find_team("mine")->source, resource_source::user);
  REQUIRE(set.find_workflow("default") != nullptr);
  CHECK_EQ(set.find_workflow("default")->source, resource_source::project);
  CHECK_EQ(set.find_workflow("default")->steps.size(), 1u);
  CHECK_EQ(set.find_workflow("research")->source, resource_source::builtin);
  CHECK_EQ(set.find_workflow("research")->path,
           "builtin:workflows/research.workflow.md");
  CHECK_EQ(set.find_agent("planner")->path, "builtin:agents/planner.md");
}

TEST_CASE("discovery: agents override case-insensitively, teams are case-sensitive") {
  temp_dir tmp;
  tmp.write(".crew/agents/x.md", "---\nname: EXPLORER\nmodel: loud\n---\n");
  tmp.write(".crew/teams/x.team.md", "---\nname: Default\n---\n");
  auto set = discover_resources(tmp.path / ".crew", {});
  REQUIRE(set.find_agent("explorer") != nullptr);
  CHECK_EQ(set.find_agent("Explorer")->model, "loud");
  CHECK_EQ(set.find_agent("explorer")->name, "EXPLORER");
  CHECK(set.find_team("Default") != nullptr);
  CHECK(set.find_team("default") != nullptr);
  CHECK_NE(set.find_team("default")->source, set.find_team("Default")->source);
}

TEST_CASE("discovery: within one directory the later file name wins") {
  temp_dir tmp;
  tmp.write(".crew/agents/a.md", "---\nname: dup\nmodel: from-a\n---\n");
  tmp.write(".crew/agents/b.md", "---\nname: dup\nmodel: from-b\n---\n");
  auto set = discover_resources(tmp.path / ".crew", {});
  CHECK_EQ(set.find_agent("dup")->model, "from-b");
}

TEST_CASE("discovery: a project file can disable a builtin agent") {
  temp_dir tmp;
  tmp.write(".crew/agents/critic.md", "---\nname: critic\ndisabled: true\n---\n");
  auto set = discover_resources(tmp.path / ".crew", {});
  CHECK(set.find_agent("critic") == nullptr);
  CHECK(set.find_agent("planner") != nullptr);
}

TEST_CASE("discovery: missing directories are fine") {
  temp_dir tmp;
  auto set = discover_resources(tmp.path / "nope" / ".crew", tmp.path / "none");
  CHECK_EQ(set.agents.size(), 13u);
}

TEST_CASE("discovery: a file that fails to parse is named in the error") {
  temp_dir tmp;
  tmp.write(".crew/workflows/bad.workflow.md", "---\nmaxConcurrency: x\n---\n## a\n");
  auto file = (tmp.path / ".crew" / "workflows" / "bad.workflow.md").string();
  auto msg = error_of([&] { discover_resources(tmp.path / ".crew", {}); });
  CHECK_EQ(msg.rfind(file + ":2: maxConcurrency", 0), 0u);
}

TEST_CASE("discovery: agents.overrides apply case-insensitively and false clears") {
  crew::resource_set rs;
  auto a = crew::parse_agent("---\nname: Explorer\nmodel: m1\ntools: read, grep\n---\nbody",
                             "x/explorer.md", crew::resource_source::project);
  rs.agents.emplace("explorer", a);
  auto b = crew::parse_agent("---\nname: writer\n---\n", "builtin:agents/writer.md",
                             crew::resource_source::builtin);
  rs.agents.emplace("writer", b);
  auto cfg = nlohmann::json::parse(R"({"agents":{"overrides":{
    "EXPLORER":{"model":"m2","tools":false},
    "writer":{"disabled":true}}}})");
  crew::apply_agent_overrides(rs, cfg);
  REQUIRE(rs.find_agent("explorer") != nullptr);
  CHECK(rs.find_agent("explorer")->model == "m2");
  CHECK(rs.find_agent("explorer")->tools.empty());
  CHECK(rs.find_agent("writer") == nullptr);
}

TEST_CASE("discovery: agents.disableBuiltins drops only builtin agents") {
  crew::resource_set rs;
  rs.agents.emplace("writer", crew::parse_agent("---\nname: writer\n---\n",
                                                "builtin:agents/writer.md",
                                                crew::resource_source::builtin));
  rs.agents.emplace("mine", crew::parse_agent("---\nname: mine\n---\n", "p/mine.md",
                                              crew::resource_source::project));
  crew::apply_agent_overrides(rs, nlohmann::json::parse(
                                    R"({"agents":{"disableBuiltins":true}})"));
  CHECK(rs.find_agent("writer") == nullptr);
  CHECK(rs.find_agent("mine") != nullptr);
}
