#include "runtime/operations/metrics.hpp"

#include <cstdio>
#include <memory>

#include "messages/errors.hpp"
#include "runtime/supervision/event_metrics.hpp"
#include "store/atomic_file.hpp"
#include "store/paths.hpp"
#include "store/snapshot.hpp"

namespace fs = std::filesystem;

namespace crew {

std::vector<metric_family> metrics_from_logs(const fs::path& crew_root) {
  metric_registry registry;
  event_metrics mapping{registry};
  for (auto& id : list_run_ids(crew_root)) {
    try {
      auto paths = make_run_paths(crew_root, id);
      auto m = parse_manifest(read_file(paths.manifest()), paths.manifest().string());
      auto plan = std::make_shared<std::vector<planned_task>>(
        parse_plan(read_file(paths.plan()), paths.plan().string()));
      mapping.apply_log(id, m.team, plan, paths.events().string());
    } catch (const input_error& e) {
      // A damaged run must not hide the others' metrics; say which.
      std::fprintf(stderr, "crew: metrics: skipping run %s: %s\n", id.c_str(),
                   e.what());
    }
  }
  return registry.collect();
}

} // namespace crew
