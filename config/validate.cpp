#include "config/validate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

namespace crew {

std::string validation_issue::to_string() const {
  std::string out = file;
  if (line > 0)
    out += fmt::format(":{}", line);
  if (!where.empty()) {
    out += ": ";
    out += where;
  }
  out += ": ";
  out += message;
  return out;
}

namespace {

void push_unique(std::vector<validation_issue>& xs, validation_issue x) {
  if (std::find(xs.begin(), xs.end(), x) == xs.end())
    xs.push_back(std::move(x));
}

std::string step_where(const workflow_step& step) {
  return fmt::format("step '{}'", step.id);
}

void check_structure(const workflow_def& wf,
                     std::vector<validation_issue>& out) {
  std::map<std::string, const workflow_step*> by_id;
  for (auto& step : wf.steps) {
    if (!by_id.emplace(step.id, &step).second)
      push_unique(out, {true, wf.path, step.line, step_where(step),
                        fmt::format("duplicate step id '{}'", step.id)});
  }
  for (auto& step : wf.steps)
    for (auto& dep : step.depends_on)
      if (by_id.count(dep) == 0)
        push_unique(out, {true, wf.path, step.line, step_where(step),
                          fmt::format("dependsOn unknown step '{}'", dep)});
  // DFS over dependsOn; report each cycle found via a back edge.
  enum class mark { none, active, done };
  std::map<std::string, mark> marks;
  std::vector<std::string> stack;
  auto visit = [&](auto& self, const std::string& id) -> void {
    marks[id] = mark::active;
    stack.push_back(id);
    auto i = by_id.find(id);
    for (auto& dep : i->second->depends_on) {
      if (by_id.count(dep) == 0)
        continue;
      auto m = marks[dep];
      if (m == mark::active) {
        auto from = std::find(stack.begin(), stack.end(), dep);
        std::string path;
        for (auto j = from; j != stack.end(); ++j) {
          path += *j;
          path += " -> ";
        }
        path += dep;
        push_unique(out,
                    {true, wf.path, by_id[dep]->line,
                     fmt::format("workflow '{}'", wf.name),
                     fmt::format("Workflow dependency cycle detected: {}.",
                                 path)});
      } else if (m == mark::none) {
        self(self, dep);
      }
    }
    stack.pop_back();
    marks[id] = mark::done;
  };
  for (auto& step : wf.steps)
    if (marks[step.id] == mark::none)
      visit(visit, step.id);
}

void check_models(const std::string& file, size_t line,
                  const std::string& where, const std::string& model,
                  std::vector<validation_issue>& out) {
  if (!model.empty() && !is_valid_model_string(model))
    push_unique(out, {false, file, line, where,
                      fmt::format("suspicious model string '{}' (whitespace "
                                  "or an empty provider/model segment)",
                                  model)});
}

} // namespace

std::vector<validation_issue> validate_workflow(const workflow_def& wf) {
  std::vector<validation_issue> out;
  if (wf.steps.empty())
    out.push_back({false, wf.path, 0, fmt::format("workflow '{}'", wf.name),
                   "workflow has no steps (no '## <id>' headings)"});
  check_structure(wf, out);
  return out;
}

std::vector<validation_issue>
validate_workflow_for_team(const team_def& team, const workflow_def& wf) {
  std::vector<validation_issue> out;
  std::set<std::string> roles;
  for (auto& role : team.roles)
    roles.insert(role.name);
  for (auto& step : wf.steps)
    if (roles.count(step.role) == 0)
      push_unique(out, {true, wf.path, step.line, step_where(step),
                        fmt::format("role '{}' is not a role of team '{}'",
                                    step.role, team.name)});
  check_structure(wf, out);
  // report in step order: structural findings were appended after role ones;
  // a stable sort by line keeps messages of one step together.
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& x, const auto& y) { return x.line < y.line; });
  return out;
}

std::vector<validation_issue> validate_resources(const resource_set& set) {
  std::vector<validation_issue> out;
  for (auto& [key, agent] : set.agents) {
    check_models(agent.path, 0, fmt::format("agent '{}'", agent.name),
                 agent.model, out);
    for (auto& model : agent.fallback_models)
      check_models(agent.path, 0, fmt::format("agent '{}'", agent.name), model,
                   out);
  }
  for (auto& [name, wf] : set.workflows) {
    for (auto& issue : validate_workflow(wf))
      push_unique(out, std::move(issue));
    for (auto& step : wf.steps)
      check_models(wf.path, step.line, step_where(step), step.model, out);
  }
  for (auto& [name, team] : set.teams) {
    for (auto& role : team.roles)
      if (set.find_agent(role.agent) == nullptr)
        push_unique(out, {true, team.path, 0,
                          fmt::format("role '{}'", role.name),
                          fmt::format("unknown agent '{}'", role.agent)});
    if (team.default_workflow.empty())
      continue;
    if (auto wf = set.find_workflow(team.default_workflow); wf == nullptr) {
      push_unique(out, {true, team.path, 0, "defaultWorkflow",
                        fmt::format("unknown workflow '{}'",
                                    team.default_workflow)});
    } else {
      for (auto& issue : validate_workflow_for_team(team, *wf))
        push_unique(out, std::move(issue));
    }
  }
  return out;
}

bool is_valid_model_string(std::string_view model) noexcept {
  if (model.empty())
    return false;
  for (auto c : model)
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
        || c == '\v')
      return false;
  if (model.find('/') == std::string_view::npos)
    return true;
  size_t start = 0;
  while (true) {
    auto slash = model.find('/', start);
    auto seg = model.substr(start, slash == std::string_view::npos
                                     ? std::string_view::npos
                                     : slash - start);
    if (seg.empty())
      return false;
    if (slash == std::string_view::npos)
      return true;
    start = slash + 1;
  }
}

bool is_safe_name(std::string_view name) noexcept {
  if (name.empty() || name.front() == '.' || name.front() == '-')
    return false;
  if (name.find("..") != std::string_view::npos)
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

} // namespace crew
