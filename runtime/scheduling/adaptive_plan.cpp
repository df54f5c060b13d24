#include "runtime/scheduling/adaptive_plan.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "messages/errors.hpp"
#include "runtime/scheduling/json_repair.hpp"

namespace crew {

namespace {

using json = nlohmann::json;

constexpr std::string_view start_marker = "ADAPTIVE_PLAN_JSON_START";
constexpr std::string_view end_marker = "ADAPTIVE_PLAN_JSON_END";
constexpr std::string_view fence = "```";

std::string_view trim(std::string_view str) noexcept {
  while (!str.empty() && is_ascii_space(str.front()))
    str.remove_prefix(1);
  while (!str.empty() && is_ascii_space(str.back()))
    str.remove_suffix(1);
  return str;
}

bool has_role(const team_def& team, std::string_view name) {
  return std::any_of(team.roles.begin(), team.roles.end(),
                     [&](const team_role& r) { return r.name == name; });
}

std::string role_list(const team_def& team) {
  std::string out;
  for (const auto& r : team.roles) {
    if (!out.empty())
      out += ", ";
    out += r.name;
  }
  return out;
}

/// Strips nlohmann's `[json.exception.parse_error.101] ` prefix.
std::string parse_message(const json::exception& e) {
  std::string_view msg = e.what();
  if (auto pos = msg.find("] ");
      !msg.empty() && msg.front() == '[' && pos != std::string_view::npos)
    msg.remove_prefix(pos + 2);
  return std::string{msg};
}

std::string phase_name(const json& phase, size_t index) {
  if (phase.is_object()) {
    auto it = phase.find("name");
    if (it != phase.end() && it->is_string()) {
      auto name = trim(it->get_ref<const std::string&>());
      if (!name.empty())
        return std::string{name};
    }
  }
  return fmt::format("phase-{}", index + 1);
}

/// Returns the trimmed string member `key`, or an empty string.
std::string string_member(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string())
    return {};
  return std::string{trim(it->get_ref<const std::string&>())};
}

/// Returns the array of raw phases: `phases`, else `[{name: adaptive,
/// tasks}]`; a null json if the plan has neither array.
json raw_phases(const json& plan) {
  if (auto it = plan.find("phases"); it != plan.end() && it->is_array())
    return *it;
  if (auto it = plan.find("tasks"); it != plan.end() && it->is_array())
    return json::array({json{{"name", "adaptive"}, {"tasks", *it}}});
  return nullptr;
}

adaptive_parse_result failure(std::string reason) {
  adaptive_parse_result r;
  r.strict_error = reason;
  r.error = std::move(reason);
  return r;
}

constexpr const char* no_plan_text
    = "no adaptive plan found: expected JSON between ADAPTIVE_PLAN_JSON_START "
      "and ADAPTIVE_PLAN_JSON_END or in a fenced code block";

// -- role aliases -------------------------------------------------------------

struct role_alias {
  std::string_view target;
  std::array<std::string_view, 4> names; ///< empty entries unused
};

constexpr std::array<role_alias, 6> role_aliases{{
    {"reviewer", {"code-reviewer", "review", "code-review", "critic"}},
    {"security-reviewer", {"security", "security-review", "sec-review", ""}},
    {"test-engineer", {"tester", "qa", "test", ""}},
    {"executor", {"developer", "implementer", "coder", "engineer"}},
    {"explorer", {"researcher", "scout", "", ""}},
    {"analyst", {"analysis", "analyzer", "", ""}},
}};

/// Maps `role` onto a role of `team`; empty if there is none.
std::string map_role(std::string_view role, const team_def& team) {
  if (has_role(team, role))
    return std::string{role};
  auto slug = adaptive_slug(role);
  if (has_role(team, slug))
    return slug;
  for (const auto& alias : role_aliases) {
    if (!has_role(team, alias.target))
      continue;
    for (auto name : alias.names)
      if (!name.empty() && name == slug)
        return std::string{alias.target};
  }
  return {};
}

// -- lenient reading ----------------------------------------------------------

/// Ends a repair that kept nothing: the strict error, then `reason`.
void repair_failed(adaptive_parse_result& r, std::string_view reason) {
  r.repairs.clear();
  r.error = fmt::format("{}; repair failed: {}", r.strict_error, reason);
}

/// Parses `text` into `doc`, closing what it left open (`close_json`) when
/// it does not parse as it is; the fixes go to `r.repairs`. False, with the
/// failure in `r`, when even the closed text does not parse.
bool parse_closed(std::string_view text, json& doc, adaptive_parse_result& r) {
  try {
    doc = json::parse(text);
  } catch (const json::exception& original) {
    auto closed = close_json(text);
    try {
      doc = json::parse(closed.text);
    } catch (const json::exception&) {
      repair_failed(r, fmt::format("invalid JSON even after closing brackets "
                                   "({})",
                                   parse_message(original)));
      return false;
    }
    for (auto& note : closed.notes)
      r.repairs.push_back(std::move(note));
  }
  return true;
}

/// How many tasks a repair kept so far, and how many it cut over the cap.
struct task_tally {
  size_t total = 0;
  size_t over_cap = 0;
};

/// Adds task `ti` (0-based) of `phase` when it is usable, its role mapped
/// onto a role of `team`; notes in `r.repairs` what it dropped or mapped.
void repair_task(const json& t, size_t ti, const team_def& team,
                 adaptive_phase& phase, adaptive_parse_result& r,
                 task_tally& tally) {
  auto drop = [&](std::string_view why) {
    r.repairs.push_back(fmt::format("dropped task {} of phase '{}': {}", ti + 1,
                                    phase.name, why));
  };
  if (!t.is_object()) {
    drop("not an object");
    return;
  }
  auto role_it = t.find("role");
  if (role_it == t.end() || !role_it->is_string()) {
    drop("'role' missing or not a string");
    return;
  }
  const auto& role = role_it->get_ref<const std::string&>();
  auto mapped = map_role(role, team);
  if (mapped.empty()) {
    drop(fmt::format("unknown role '{}'", role));
    return;
  }
  auto text = string_member(t, "task");
  if (text.empty()) {
    drop("empty task");
    return;
  }
  if (mapped != role)
    r.repairs.push_back(fmt::format("role '{}' mapped to '{}' (task {} of "
                                    "phase '{}')",
                                    role, mapped, ti + 1, phase.name));
  phase.tasks.push_back(
      {std::move(mapped), string_member(t, "title"), std::move(text)});
  ++tally.total;
}

/// Adds phase `pi` (0-based) of the plan to `r.plan` with its usable tasks,
/// unless it has none; counts the tasks past the cap in `tally`.
void repair_phase(const json& raw, size_t pi, const team_def& team,
                  adaptive_parse_result& r, task_tally& tally) {
  auto tasks_it = raw.is_object() ? raw.find("tasks") : raw.end();
  bool has_tasks
      = raw.is_object() && tasks_it != raw.end() && tasks_it->is_array();
  if (tally.total >= max_adaptive_tasks) {
    if (has_tasks)
      tally.over_cap += tasks_it->size();
    return;
  }
  if (!raw.is_object()) {
    r.repairs.push_back(fmt::format("dropped phase {}: not an object", pi + 1));
    return;
  }
  adaptive_phase phase;
  phase.name = phase_name(raw, pi);
  if (!has_tasks) {
    r.repairs.push_back(fmt::format("dropped phase {} ('{}'): 'tasks' is "
                                    "not an array",
                                    pi + 1, phase.name));
    return;
  }
  const auto& tasks = *tasks_it;
  for (size_t ti = 0; ti < tasks.size(); ++ti) {
    if (tally.total >= max_adaptive_tasks) {
      tally.over_cap += tasks.size() - ti;
      break;
    }
    repair_task(tasks[ti], ti, team, phase, r, tally);
  }
  if (phase.tasks.empty()) {
    r.repairs.push_back(fmt::format("dropped phase {} ('{}'): no valid task",
                                    pi + 1, phase.name));
    return;
  }
  r.plan.phases.push_back(std::move(phase));
}

/// Reads `text` leniently into `r` (which holds the strict error already).
void repair(std::string_view text, const team_def& team,
            adaptive_parse_result& r) {
  json doc;
  if (!parse_closed(text, doc, r))
    return;
  if (!doc.is_object()) {
    repair_failed(r, "the plan is not a JSON object");
    return;
  }
  auto phases = raw_phases(doc);
  if (phases.is_null()) {
    repair_failed(r, "the plan has neither a 'phases' nor a 'tasks' array");
    return;
  }
  task_tally tally;
  for (size_t pi = 0; pi < phases.size(); ++pi)
    repair_phase(phases[pi], pi, team, r, tally);
  if (tally.over_cap > 0)
    r.repairs.push_back(fmt::format("truncated to {} tasks: dropped {} more "
                                    "task(s)",
                                    max_adaptive_tasks, tally.over_cap));
  if (r.plan.phases.empty()) {
    r.plan = {};
    repair_failed(r, "no valid task left");
    return;
  }
  r.ok = true;
  r.repaired = true;
  r.error.clear();
}

} // namespace

size_t adaptive_plan::task_count() const noexcept {
  size_t n = 0;
  for (const auto& p : phases)
    n += p.tasks.size();
  return n;
}

std::optional<std::string_view>
extract_adaptive_plan_text(std::string_view output) {
  if (auto start = output.find(start_marker); start != std::string_view::npos) {
    auto body = start + start_marker.size();
    if (auto end = output.find(end_marker, body); end != std::string_view::npos)
      return trim(output.substr(body, end - body));
  }
  auto open = output.find(fence);
  if (open == std::string_view::npos)
    return std::nullopt;
  auto body = open + fence.size();
  auto info = output.substr(body, 4);
  if (info.size() == 4 && to_lower(info) == "json")
    body += 4;
  auto close = output.find(fence, body);
  if (close == std::string_view::npos)
    return std::nullopt;
  return trim(output.substr(body, close - body));
}

adaptive_parse_result parse_adaptive_plan_strict(std::string_view output,
                                                 const team_def& team) {
  auto text = extract_adaptive_plan_text(output);
  if (!text)
    return failure(no_plan_text);
  if (text->empty())
    return failure("the adaptive plan block is empty");
  json doc;
  try {
    doc = json::parse(*text);
  } catch (const json::exception& e) {
    return failure(fmt::format("invalid JSON: {}", parse_message(e)));
  }
  if (!doc.is_object())
    return failure("the plan is not a JSON object");
  auto phases = raw_phases(doc);
  if (phases.is_null())
    return failure("the plan has neither a 'phases' nor a 'tasks' array");
  if (phases.empty())
    return failure("the plan has no phases");
  adaptive_parse_result r;
  size_t total = 0;
  for (size_t pi = 0; pi < phases.size(); ++pi) {
    const auto& raw = phases[pi];
    if (!raw.is_object())
      return failure(fmt::format("phase {}: not an object", pi + 1));
    adaptive_phase phase;
    phase.name = phase_name(raw, pi);
    auto where = fmt::format("phase {} ('{}')", pi + 1, phase.name);
    auto tasks_it = raw.find("tasks");
    if (tasks_it == raw.end() || !tasks_it->is_array() || tasks_it->empty())
      return failure(where + ": 'tasks' must be a non-empty array");
    for (size_t ti = 0; ti < tasks_it->size(); ++ti) {
      const auto& t = (*tasks_it)[ti];
      auto at = fmt::format("{}, task {}", where, ti + 1);
      if (!t.is_object())
        return failure(at + ": not an object");
      auto role_it = t.find("role");
      if (role_it == t.end() || !role_it->is_string())
        return failure(at + ": 'role' missing or not a string");
      const auto& role = role_it->get_ref<const std::string&>();
      if (!has_role(team, role))
        return failure(fmt::format("{}: role '{}' is not a role of team '{}' "
                                   "({})",
                                   at, role, team.name, role_list(team)));
      auto task = string_member(t, "task");
      if (task.empty())
        return failure(at + ": 'task' missing, not a string or blank");
      if (++total > max_adaptive_tasks)
        return failure(fmt::format("{}: more than {} tasks in the plan", at,
                                   max_adaptive_tasks));
      phase.tasks.push_back({role, string_member(t, "title"), std::move(task)});
    }
    r.plan.phases.push_back(std::move(phase));
  }
  r.ok = true;
  return r;
}

adaptive_parse_result parse_adaptive_plan(std::string_view output,
                                          const team_def& team,
                                          bool allow_repair) {
  auto r = parse_adaptive_plan_strict(output, team);
  if (r.ok)
    return r;
  if (!allow_repair) {
    r.error = r.strict_error + "; repair disabled";
    return r;
  }
  auto text = extract_adaptive_plan_text(output);
  if (!text || text->empty()) {
    r.error = r.strict_error + "; repair failed: nothing to repair";
    return r;
  }
  repair(*text, team, r);
  return r;
}

bool adaptive_repair_from_env() {
  for (auto name : {"PI_CREW_ADAPTIVE_REPAIR", "PI_TEAMS_ADAPTIVE_REPAIR"})
    if (auto value = std::getenv(name);
        value != nullptr && std::string_view{value} == "0")
      return false;
  return true;
}

std::string adaptive_repair_json(const adaptive_parse_result& result) {
  nlohmann::ordered_json doc;
  doc["reason"] = result.repairs.empty() ? "normalized" : "repaired";
  auto phases = nlohmann::ordered_json::array();
  for (const auto& p : result.plan.phases) {
    nlohmann::ordered_json phase;
    phase["name"] = p.name;
    phase["count"] = p.tasks.size();
    auto roles = nlohmann::ordered_json::array();
    for (const auto& t : p.tasks)
      roles.push_back(t.role);
    phase["roles"] = std::move(roles);
    phases.push_back(std::move(phase));
  }
  doc["phases"] = std::move(phases);
  doc["repairs"] = result.repairs;
  doc["strictError"] = result.strict_error;
  return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
         + '\n';
}

// -- injection ----------------------------------------------------------------

std::string adaptive_slug(std::string_view str) {
  std::string out;
  for (char c : str) {
    auto ch = static_cast<unsigned char>(c);
    if (ch >= 'A' && ch <= 'Z')
      ch = static_cast<unsigned char>(ch - 'A' + 'a');
    if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
      out.push_back(static_cast<char>(ch));
    else if (out.empty() || out.back() != '-')
      out.push_back('-');
  }
  auto first = out.find_first_not_of('-');
  if (first == std::string::npos)
    return "task";
  auto last = out.find_last_not_of('-');
  // pi-crew trims first and cuts to 32 afterwards, so a slug may end in '-'.
  return out.substr(first, std::min<size_t>(last - first + 1, 32));
}

std::vector<workflow_step> adaptive_steps(const adaptive_plan& plan,
                                          std::string_view assess_step_id) {
  std::vector<workflow_step> steps;
  std::vector<std::string> previous{std::string{assess_step_id}};
  for (size_t pi = 0; pi < plan.phases.size(); ++pi) {
    const auto& phase = plan.phases[pi];
    std::vector<std::string> current;
    for (size_t ti = 0; ti < phase.tasks.size(); ++ti) {
      const auto& t = phase.tasks[ti];
      workflow_step s;
      s.id = fmt::format("adaptive-{}-{}-{}", pi + 1, ti + 1,
                         adaptive_slug(t.role));
      s.role = t.role;
      s.task = t.task;
      s.parallel_group = "adaptive-" + adaptive_slug(phase.name);
      s.depends_on = previous;
      current.push_back(s.id);
      steps.push_back(std::move(s));
    }
    previous = std::move(current);
  }
  return steps;
}

std::vector<planned_task> adaptive_tasks(const adaptive_plan& plan,
                                         const team_def& team,
                                         std::string_view assess_task_id,
                                         uint32_t assess_index,
                                         size_t first_index) {
  std::vector<planned_task> out;
  out.reserve(plan.task_count());
  std::vector<std::string> previous_ids{std::string{assess_task_id}};
  std::vector<uint32_t> previous_deps{assess_index};
  auto steps = adaptive_steps(plan, "");
  size_t n = 0;
  for (const auto& phase : plan.phases) {
    std::vector<std::string> ids;
    std::vector<uint32_t> deps;
    for (const auto& t : phase.tasks) {
      auto& step = steps[n];
      planned_task x;
      x.id = fmt::format("adaptive-{:02}-{}", n + 1, adaptive_slug(t.role));
      x.step_id = std::move(step.id);
      x.role = t.role;
      x.agent = t.role;
      for (const auto& r : team.roles)
        if (r.name == t.role)
          x.agent = r.agent;
      x.title = t.title.empty() ? x.step_id : t.title;
      x.task = t.task;
      x.depends_on = previous_ids;
      x.deps = previous_deps;
      ids.push_back(x.id);
      deps.push_back(static_cast<uint32_t>(first_index + n));
      out.push_back(std::move(x));
      ++n;
    }
    previous_ids = std::move(ids);
    previous_deps = std::move(deps);
  }
  return out;
}

std::vector<planned_task>
adaptive_tasks(const adaptive_plan& plan, const team_def& team,
               const std::vector<planned_task>& existing,
               std::string_view assess_task_id) {
  auto find = [&](auto member) {
    return std::find_if(
        existing.begin(), existing.end(),
        [&](const planned_task& t) { return t.*member == assess_task_id; });
  };
  auto assess = find(&planned_task::id);
  if (assess == existing.end())
    assess = find(&planned_task::step_id);
  if (assess == existing.end())
    throw input_error(fmt::format("adaptive plan: no task '{}' to depend on",
                                  assess_task_id));
  auto index = static_cast<uint32_t>(assess - existing.begin());
  auto out = adaptive_tasks(plan, team, assess->id, index, existing.size());
  std::unordered_set<std::string_view> taken;
  for (const auto& t : existing)
    taken.insert(t.id);
  for (const auto& t : out)
    if (taken.count(t.id) > 0)
      throw input_error(fmt::format("adaptive plan: task id '{}' is already "
                                    "in the plan (injected twice?)",
                                    t.id));
  return out;
}

} // namespace crew
