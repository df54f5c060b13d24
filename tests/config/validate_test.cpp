#include "config/validate.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace crew;

namespace {

team_def make_team(std::vector<std::string> roles) {
  team_def t;
  t.name = "t";
  t.path = "/p/.crew/teams/t.team.md";
  for (auto& r : roles)
    t.roles.push_back({r, r, ""});
  return t;
}

workflow_def wf(std::string_view text) {
  return parse_workflow(text, "/p/.crew/workflows/x.workflow.md",
                        resource_source::project);
}

std::vector<std::string> texts(const std::vector<validation_issue>& xs) {
  std::vector<std::string> out;
  for (auto& x : xs)
    out.push_back(x.to_string());
  return out;
}

bool contains(const std::vector<std::string>& xs, const std::string& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

} // namespace

TEST_CASE("workflow: a valid workflow for its team has no issues") {
  auto w = wf("## a\n\n## b\ndependsOn: a\n\n## c\ndependsOn: a, b\n");
  CHECK(validate_workflow_for_team(make_team({"a", "b", "c"}), w).empty());
}

TEST_CASE("workflow: rejects duplicate step ids") {
  auto w = wf("## a\n## a\n");
  auto issues = validate_workflow_for_team(make_team({"a"}), w);
  REQUIRE_EQ(issues.size(), 1u);
  CHECK(issues[0].error);
  CHECK_EQ(issues[0].to_string(), "/p/.crew/workflows/x.workflow.md:2: step "
                                  "'a': duplicate step id 'a'");
}

TEST_CASE("workflow: rejects a step role that is not a team role") {
  auto w = wf("## a\nrole: ghost\n");
  auto issues = texts(validate_workflow_for_team(make_team({"a"}), w));
  REQUIRE_EQ(issues.size(), 1u);
  CHECK_EQ(issues[0], "/p/.crew/workflows/x.workflow.md:1: step 'a': role "
                      "'ghost' is not a role of team 't'");
}

TEST_CASE("workflow: rejects dependsOn naming an unknown step") {
  auto w = wf("## a\n\n## b\ndependsOn: a, zz\n");
  auto issues = validate_workflow_for_team(make_team({"a", "b"}), w);
  REQUIRE_EQ(issues.size(), 1u);
  CHECK_EQ(issues[0].where, "step 'b'");
  CHECK_EQ(issues[0].message, "dependsOn unknown step 'zz'");
  CHECK_EQ(issues[0].to_string(), "/p/.crew/workflows/x.workflow.md:3: step "
                                  "'b': dependsOn unknown step 'zz'");
}

TEST_CASE("workflow: rejects a dependency cycle naming the steps") {
  auto w = wf("## a\ndependsOn: b\n\n## b\ndependsOn: a\n");
  auto issues = validate_workflow_for_team(make_team({"a", "b"}), w);
  REQUIRE_EQ(issues.size(), 1u);
  CHECK(issues[0].error);
  CHECK_EQ(issues[0].message, "Workflow dependency cycle detected: a -> b -> a.");
}

TEST_CASE("workflow: a self-dependency and a longer cycle are both reported once") {
  auto w = wf("## s\ndependsOn: s\n\n## a\ndependsOn: c\n\n## b\ndependsOn: a\n\n"
              "## c\ndependsOn: b\n");
  auto issues = validate_workflow_for_team(make_team({"s", "a", "b", "c"}), w);
  std::vector<std::string> messages;
  for (auto& i : issues)
    messages.push_back(i.message);
  CHECK(contains(messages, "Workflow dependency cycle detected: s -> s."));
  CHECK(contains(messages,
                 "Workflow dependency cycle detected: a -> c -> b -> a."));
  CHECK_EQ(issues.size(), 2u);
}

TEST_CASE("workflow: issues are de-duplicated") {
  auto w = wf("## a\ndependsOn: zz, zz\n");
  auto issues = validate_workflow_for_team(make_team({"a"}), w);
  CHECK_EQ(issues.size(), 1u);
}

TEST_CASE("validate: team role naming an unknown agent and unknown defaultWorkflow") {
  resource_set set;
  team_def t;
  t.name = "t";
  t.path = "/p/.crew/teams/t.team.md";
  t.roles.push_back({"lead", "nobody", ""});
  t.default_workflow = "missing";
  set.teams.emplace("t", t);
  auto issues = texts(validate_resources(set));
  CHECK(contains(issues, "/p/.crew/teams/t.team.md: role 'lead': unknown agent 'nobody'"));
  CHECK(contains(issues, "/p/.crew/teams/t.team.md: defaultWorkflow: unknown workflow 'missing'"));
}

TEST_CASE("validate: a team's default workflow is checked against the team") {
  resource_set set;
  agent_def a;
  a.name = "x";
  set.agents.emplace("x", a);
  team_def t;
  t.name = "t";
  t.path = "t.team.md";
  t.roles.push_back({"x", "x", ""});
  t.default_workflow = "w";
  set.teams.emplace("t", t);
  auto w = parse_workflow("## s\nrole: y\n", "w.workflow.md", resource_source::project);
  set.workflows.emplace("w", w);
  auto issues = texts(validate_resources(set));
  REQUIRE_EQ(issues.size(), 1u);
  CHECK_EQ(issues[0], "w.workflow.md:1: step 's': role 'y' is not a role of team 't'");
}

TEST_CASE("validate: suspicious model strings and empty workflows are warnings") {
  resource_set set;
  agent_def a;
  a.name = "x";
  a.path = "x.md";
  a.model = "anthropic/";
  a.fallback_models = {"good/model", "has space"};
  set.agents.emplace("x", a);
  set.workflows.emplace("w", parse_workflow("no steps here", "w.workflow.md",
                                            resource_source::project));
  auto issues = validate_resources(set);
  REQUIRE_EQ(issues.size(), 3u);
  CHECK(std::none_of(issues.begin(), issues.end(),
                     [](auto& i) { return i.error; }));
  auto all = texts(issues);
  CHECK(contains(all, "x.md: agent 'x': suspicious model string 'anthropic/' "
                      "(whitespace or an empty provider/model segment)"));
  CHECK(contains(all, "w.workflow.md: workflow 'w': workflow has no steps (no "
                      "'## <id>' headings)"));
}

TEST_CASE("validate: model string rules") {
  CHECK(is_valid_model_string("claude-sonnet-4-5"));
  CHECK(is_valid_model_string("anthropic/claude-sonnet-4-5:high"));
  CHECK_FALSE(is_valid_model_string("/claude"));
  CHECK_FALSE(is_valid_model_string("a//b"));
  CHECK_FALSE(is_valid_model_string("claude sonnet"));
  CHECK_FALSE(is_valid_model_string(""));
}

TEST_CASE("validate: is_safe_name rejects path-like names") {
  CHECK(is_safe_name("explorer"));
  CHECK(is_safe_name("security-reviewer"));
  CHECK(is_safe_name("v1.2_x"));
  CHECK_FALSE(is_safe_name(""));
  CHECK_FALSE(is_safe_name("../etc"));
  CHECK_FALSE(is_safe_name("a/b"));
  CHECK_FALSE(is_safe_name("a\\b"));
  CHECK_FALSE(is_safe_name("a..b"));
  CHECK_FALSE(is_safe_name(".hidden"));
  CHECK_FALSE(is_safe_name("-rf"));
  CHECK_FALSE(is_safe_name("has space"));
  CHECK_FALSE(is_safe_name("caf\xc3\xa9"));
}
