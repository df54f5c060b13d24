#include "runtime/scheduling/planning.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "store/snapshot.hpp"
#include "store/utf8.hpp"

namespace crew {

std::string normalize_step_id(std::string_view step_id) {
  std::string out;
  bool dash = false;
  for (char c : step_id) {
    auto ch = static_cast<unsigned char>(c);
    if (ch >= 'A' && ch <= 'Z')
      ch = static_cast<unsigned char>(ch - 'A' + 'a');
    if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-') {
      out += static_cast<char>(ch);
      dash = false;
    } else if (!dash) {
      out += '-';
      dash = true;
    }
  }
  auto first = out.find_first_not_of('-');
  if (first == std::string::npos)
    return "task";
  auto last = out.find_last_not_of('-');
  return out.substr(first, last - first + 1);
}

std::vector<planned_task> build_plan(const team_def& team,
                                     const workflow_def& workflow) {
  std::vector<planned_task> plan;
  plan.reserve(workflow.steps.size());
  uint32_t n = 0;
  for (auto& step : workflow.steps) {
    planned_task t;
    t.id = fmt::format("{:02}_{}", ++n, normalize_step_id(step.id));
    t.step_id = step.id;
    t.role = step.role;
    t.agent = step.role;
    for (auto& role : team.roles)
      if (role.name == step.role)
        t.agent = role.agent;
    t.title = step.id;
    t.model = step.model;
    t.task = step.task;
    t.depends_on = step.depends_on;
    plan.push_back(std::move(t));
  }
  resolve_deps(plan, workflow.path);
  return plan;
}

std::vector<validation_issue> step_text_issues(const workflow_def& workflow) {
  std::vector<validation_issue> out;
  for (auto& step : workflow.steps) {
    auto check = [&](std::string_view field, std::string_view text, size_t line) {
      auto bad = find_invalid_utf8(text);
      if (bad == std::string_view::npos)
        return;
      if (line != 0) // the line of the bad byte in a multi-line task
        line += static_cast<size_t>(std::count(text.begin(), text.begin() + bad, '\n'));
      out.push_back({true, workflow.path, line,
                     fmt::format("step '{}'", valid_utf8(step.id)),
                     fmt::format("{} is not valid UTF-8 (byte 0x{:02X})", field,
                                 static_cast<unsigned char>(text[bad]))});
    };
    check("id", step.id, step.line);
    if (step.role != step.id) // the default role is the id: said once
      check("role", step.role, step.line);
    check("task", step.task, step.task_line);
    check("model", step.model, step.line);
    check("output", step.output, step.line);
    check("parallelGroup", step.parallel_group, step.line);
    for (auto& dep : step.depends_on)
      check("dependsOn", dep, step.line);
    for (auto& name : step.reads)
      check("reads", name, step.line);
  }
  return out;
}

bool from_string(std::string_view str, graph_shape& x) noexcept {
  if (str == "fanout")
    x = graph_shape::fanout;
  else if (str == "chain")
    x = graph_shape::chain;
  else if (str == "diamond")
    x = graph_shape::diamond;
  else if (str == "random")
    x = graph_shape::random;
  else
    return false;
  return true;
}

const char* to_string(graph_shape x) noexcept {
  switch (x) {
    case graph_shape::fanout:
      return "fanout";
    case graph_shape::chain:
      return "chain";
    case graph_shape::diamond:
      return "diamond";
    case graph_shape::random:
      return "random";
  }
  return "unknown";
}

std::vector<planned_task> synthetic_plan(graph_shape shape, uint32_t n,
                                         uint64_t seed) {
  std::vector<planned_task> plan(n);
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (uint32_t i = 0; i < n; ++i) {
    auto& t = plan[i];
    t.id = fmt::format("t{}", i + 1);
    t.step_id = t.id;
    t.role = "sim";
    t.agent = "sim";
    t.title = t.id;
    auto add = [&](uint32_t dep) {
      t.deps.push_back(dep);
      t.depends_on.push_back(plan[dep].id);
    };
    if (i == 0)
      continue;
    switch (shape) {
      case graph_shape::fanout:
        add(0);
        break;
      case graph_shape::chain:
        add(i - 1);
        break;
      case graph_shape::diamond:
        if (i + 1 < n || n <= 2) {
          add(0);
        } else {
          for (uint32_t d = 1; d + 1 < n; ++d)
            add(d);
        }
        break;
      case graph_shape::random: {
        auto k = 1 + next() % 3;
        for (uint64_t j = 0; j < k; ++j) {
          auto dep = static_cast<uint32_t>(next() % i);
          bool seen = false;
          for (auto d : t.deps)
            seen = seen || d == dep;
          if (!seen)
            add(dep);
        }
        break;
      }
    }
  }
  return plan;
}

} // namespace crew
