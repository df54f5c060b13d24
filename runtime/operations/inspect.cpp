#include "runtime/operations/inspect.hpp"

#include <fmt/format.h>

#include "messages/errors.hpp"
#include "runtime/operations/detail/run_files.hpp"
#include "runtime/operations/detail/run_lock.hpp"
#include "store/atomic_file.hpp"
#include "store/paths.hpp"
#include "store/snapshot.hpp"

namespace fs = std::filesystem;

namespace crew {

run_view load_run(const fs::path& crew_root, std::string_view run_id) {
  require_valid_run_id(run_id);
  run_view view;
  auto paths = make_run_paths(crew_root, run_id);
  std::error_code ec;
  if (!fs::is_directory(paths.state_dir, ec))
    throw input_error(errc::not_found,
                      fmt::format("unknown run id '{}' (no {})", run_id,
                                  paths.state_dir.string()));
  view.manifest = parse_manifest(read_file(paths.manifest()),
                                 paths.manifest().string());
  view.plan = parse_plan(read_file(paths.plan()), paths.plan().string());
  view.replay = replay_log(paths.events(), view.plan);
  detail::grow_plan(view.plan, view.replay, paths);
  auto owner = detail::read_lock(paths.lock());
  view.owner_alive = detail::owner_alive(owner);
  view.owner_pid = owner.pid;
  return view;
}

} // namespace crew
