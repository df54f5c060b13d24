// Fuzzes config loading: config/config (load_config on a project and a user
// file, apply_override for `--set`, to_json) and apply_agent_overrides.
//
// Input: documents separated by a line `%%`: the project's config.json, the
// user config file, then `--set` arguments, one per line.
// Documented errors: input_error (load_config, apply_override).

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "config/resources.hpp"
#include "fuzz/fuzz_support.hpp"

using namespace crew;

namespace {

const resource_set& builtins() {
  static const resource_set set = discover_resources({}, {});
  return set;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::split_parts(fuzz::as_text(data, size), 3);
  const auto& dir = fuzz::scratch_dir();
  auto crew_root = dir / ".crew";
  auto user_file = dir / "user.json";
  static bool once = [&] {
    std::filesystem::create_directories(crew_root);
    return true;
  }();
  (void) once;
  fuzz::write_file(crew_root / "config.json", parts[0]);
  bool has_user = parts.size() > 1;
  if (has_user)
    fuzz::write_file(user_file, parts[1]);
  crew_config cfg;
  bool loaded = fuzz::guarded([&] {
    cfg = load_config(crew_root, has_user ? user_file : std::filesystem::path{});
  });
  if (!loaded)
    return 0;
  if (parts.size() > 2) {
    auto sets = parts[2];
    while (!sets.empty()) {
      auto nl = sets.find('\n');
      auto line = sets.substr(0, nl);
      sets = nl == std::string_view::npos ? std::string_view{} : sets.substr(nl + 1);
      auto before = cfg.values;
      if (!fuzz::guarded([&] { apply_override(cfg, line); }))
        fuzz::check(cfg.values == before, "a failed --set changes nothing");
    }
  }
  // What `crew config --json` prints; the values must round-trip through
  // config_from_json, which validates like a file.
  auto effective = to_json(cfg);
  (void) effective.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  fuzz::check(fuzz::guarded([&] { (void) config_from_json(cfg.values, "fuzz"); }),
              "the merged values of a loaded config validate again");
  auto resources = builtins();
  apply_agent_overrides(resources, cfg.values);
  return 0;
}
