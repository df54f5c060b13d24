// Fuzzes the JSON snapshots of store/snapshot: parse_plan (plan.json),
// parse_tasks (tasks.json) and parse_manifest (manifest.json), and checks
// that what the writers render from the result parses again.
//
// Input: plan.json, tasks.json and manifest.json separated by lines `%%`;
// a single document is tried as each of the three.
// Documented errors: input_error (corrupt_log or invalid_input, naming the
// file).

#include "fuzz/fuzz_support.hpp"
#include "store/snapshot.hpp"

using namespace crew;

namespace {

const std::vector<planned_task>& fallback_plan() {
  static const std::vector<planned_task> tasks = [] {
    std::vector<planned_task> p(3);
    p[0].id = "01_a";
    p[1].id = "02_b";
    p[2].id = "03_c";
    return p;
  }();
  return tasks;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::split_parts(fuzz::as_text(data, size), 3);
  auto plan_text = parts[0];
  auto tasks_text = parts.size() > 1 ? parts[1] : parts[0];
  auto manifest_text = parts.size() > 2 ? parts[2] : parts[0];

  std::vector<planned_task> plan;
  bool have_plan = fuzz::guarded([&] { plan = parse_plan(plan_text, "plan.json"); });
  if (have_plan) {
    auto text = plan_json(plan);
    std::vector<planned_task> again;
    fuzz::check(fuzz::guarded([&] { again = parse_plan(text, "again.json"); }),
                "a rendered plan parses");
    fuzz::check(plan_json(again) == text, "plan.json round-trips");
  } else {
    plan = fallback_plan();
  }

  std::vector<task_state> states;
  if (fuzz::guarded([&] { states = parse_tasks(tasks_text, plan, "tasks.json"); })) {
    fuzz::check(states.size() == plan.size(), "one state per planned task");
    for (size_t i = 0; i < plan.size(); ++i)
      (void) queue_state(plan, states, i);
    auto text = tasks_json("run_1", plan, states, "/work");
    fuzz::check(fuzz::guarded([&] { (void) parse_tasks(text, plan, "again.json"); }),
                "a rendered tasks.json parses");
  }

  run_manifest m;
  if (fuzz::guarded([&] { m = parse_manifest(manifest_text, "manifest.json"); })) {
    auto text = manifest_json(m);
    run_manifest again;
    fuzz::check(fuzz::guarded([&] { again = parse_manifest(text, "again.json"); }),
                "a rendered manifest parses");
    fuzz::check(manifest_json(again) == text, "manifest.json round-trips");
  }
  return 0;
}
