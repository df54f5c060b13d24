// Fuzzes resource parsing: config/frontmatter (parse_frontmatter), the agent,
// team and workflow parsers of config/resources and config/validate.
//
// Input: up to three documents separated by a line `%%`: an agent file, a
// team file and a workflow file. Each one is also parsed as the other kinds.
// Documented errors: input_error from parse_agent/team/workflow.

#include <optional>

#include "config/frontmatter.hpp"
#include "config/resources.hpp"
#include "config/validate.hpp"
#include "fuzz/fuzz_support.hpp"

using namespace crew;

namespace {

const resource_set& builtins() {
  static const resource_set set = discover_resources({}, {});
  return set;
}

void use(const std::vector<validation_issue>& issues) {
  for (const auto& issue : issues)
    fuzz::check(!issue.to_string().empty(), "an issue renders as text");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::split_parts(fuzz::as_text(data, size), 3);
  for (auto part : parts) {
    auto fm = parse_frontmatter(part);
    fuzz::check(fm.fields.size() == fm.field_lines.size(),
                "one line number per field");
    for (const auto& [key, value] : fm.fields) {
      fuzz::check(frontmatter_has(fm, key), "a parsed key is found");
      fuzz::check(frontmatter_line(fm, key) > 0, "a parsed key has a line");
      (void) frontmatter_get(fm, key);
      (void) split_csv(value);
    }
  }
  std::optional<agent_def> agent;
  std::optional<team_def> team;
  std::optional<workflow_def> workflow;
  for (size_t i = 0; i < parts.size(); ++i) {
    auto text = parts[i];
    fuzz::guarded([&] {
      auto a = parse_agent(text, "fuzz/agents/a.md", resource_source::project);
      if (i == 0)
        agent = std::move(a);
    });
    fuzz::guarded([&] {
      auto t = parse_team(text, "fuzz/teams/t.team.md", resource_source::project);
      if (i == 1 || (parts.size() == 1))
        team = std::move(t);
    });
    fuzz::guarded([&] {
      auto w = parse_workflow(text, "fuzz/workflows/w.workflow.md",
                              resource_source::project);
      if (i == 2 || (parts.size() == 1))
        workflow = std::move(w);
    });
  }
  if (workflow)
    use(validate_workflow(*workflow));
  if (team && workflow)
    use(validate_workflow_for_team(*team, *workflow));
  if (agent || team || workflow) {
    auto set = builtins();
    if (agent)
      set.agents.insert_or_assign(to_lower(agent->name), *agent);
    if (team)
      set.teams.insert_or_assign(team->name, *team);
    if (workflow)
      set.workflows.insert_or_assign(workflow->name, *workflow);
    use(validate_resources(set));
  }
  return 0;
}
