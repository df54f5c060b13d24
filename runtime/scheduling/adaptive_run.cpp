#include "runtime/scheduling/adaptive_run.hpp"

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/scheduling/adaptive_plan.hpp"
#include "store/atomic_file.hpp"
#include "store/snapshot.hpp"

namespace crew {

namespace {

using json = nlohmann::json;

// Event data holds a planner's text: ill-formed UTF-8 becomes U+FFFD instead
// of throwing type_error.316.
std::string dump_event_data(const json& data) {
  return data.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string reason_data(std::string_view task_id, std::string_view reason) {
  return dump_event_data(json{{"taskId", task_id}, {"reason", reason}});
}

/// The `adaptive.plan_injected` data: pi-crew's phase summary plus the
/// tasks as plan.json entries, so that a replay of the log alone rebuilds
/// the plan.
std::string injected_data(const adaptive_plan& plan,
                          const std::vector<planned_task>& tasks) {
  json phases = json::array();
  for (auto& ph : plan.phases) {
    json roles = json::array();
    for (auto& t : ph.tasks)
      roles.push_back(t.role);
    phases.push_back(
      {{"name", ph.name}, {"count", ph.tasks.size()}, {"roles", roles}});
  }
  json entries = json::array();
  for (auto& t : tasks)
    entries.push_back({{"id", t.id},
                       {"stepId", t.step_id},
                       {"role", t.role},
                       {"agent", t.agent},
                       {"title", t.title},
                       {"model", t.model},
                       {"task", t.task},
                       {"dependsOn", t.depends_on}});
  return dump_event_data(json{{"phases", phases}, {"tasks", entries}});
}

} // namespace

uint32_t adaptive_assess_index(std::string_view workflow,
                               const std::vector<planned_task>& plan) {
  if (workflow != "implementation")
    return UINT32_MAX;
  uint32_t assess = UINT32_MAX;
  for (uint32_t i = 0; i < plan.size(); ++i) {
    if (plan[i].step_id.starts_with("adaptive-"))
      return UINT32_MAX; // injected before: the plan already holds its tasks
    if (plan[i].step_id == "assess" && assess == UINT32_MAX)
      assess = i;
  }
  return assess;
}

adaptive_injection prepare_adaptive_injection(const run_setup& setup,
                                              uint32_t assess_index) {
  adaptive_injection out;
  auto& support = *setup.adaptive;
  auto& assess = setup.plan.at(assess_index);
  auto missing = [&](std::string reason) {
    out.events.push_back(
      {"adaptive.plan_missing",
       fmt::format("Adaptive planner '{}' produced no usable plan: {}",
                   assess.id, reason),
       reason_data(assess.id, reason)});
    return std::move(out);
  };
  auto path = setup.paths.artifacts_dir / "results"
              / (assess.id
                 + (setup.backend == backend_kind::scaffold ? ".md" : ".txt"));
  std::string output;
  try {
    output = read_file(path);
  } catch (const std::exception& e) {
    return missing(fmt::format("result {} is missing or unreadable ({})",
                               path.string(), e.what()));
  }
  auto parsed = parse_adaptive_plan(output, support.team, support.allow_repair);
  if (!parsed.ok) {
    if (support.allow_repair)
      out.events.push_back({"adaptive.plan_repair_failed",
                            fmt::format("Adaptive plan of '{}' could not be "
                                        "repaired: {}",
                                        assess.id, parsed.error),
                            reason_data(assess.id, parsed.error)});
    return missing(fmt::format("{} (in {})", parsed.error, path.string()));
  }
  if (parsed.repaired) {
    json data{{"taskId", assess.id},
              {"reason", parsed.repairs.empty() ? "normalized" : "repaired"},
              {"repairs", parsed.repairs},
              {"strictError", parsed.strict_error}};
    out.events.push_back(
      {"adaptive.plan_repaired",
       fmt::format("Adaptive plan of '{}' repaired ({} tasks).", assess.id,
                   parsed.plan.task_count()),
       dump_event_data(data)});
    out.repair_json = adaptive_repair_json(parsed);
  }
  std::vector<planned_task> tasks;
  try {
    tasks = adaptive_tasks(parsed.plan, support.team, setup.plan, assess.id);
  } catch (const std::exception& e) {
    return missing(e.what());
  }
  auto grown = std::make_shared<run_setup>(setup);
  grown->checkpoint = {}; // the state it started from; not needed any more
  auto first = grown->plan.size();
  grown->plan.insert(grown->plan.end(), tasks.begin(), tasks.end());
  if (support.fill_workers)
    support.fill_workers(*grown, first);
  out.message = fmt::format("Adaptive plan injected: {} tasks in {} phases.",
                            tasks.size(), parsed.plan.phases.size());
  out.data = injected_data(parsed.plan, tasks);
  out.setup = std::move(grown);
  return out;
}

} // namespace crew
