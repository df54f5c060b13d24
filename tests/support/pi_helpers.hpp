#pragma once

// Shared by the pi worker tests (spawn and rpc): an environment lookup made
// of a map, and small file readers.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "runtime/workers/pi/pi_invocation.hpp"

namespace crew::test {

/// An `env_lookup` that sees only `vars`.
inline env_lookup map_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](
             std::string_view name) -> std::optional<std::string> {
    if (auto i = vars.find(std::string{name}); i != vars.end())
      return i->second;
    return std::nullopt;
  };
}

/// A scratch tree for a fake pi script, removed on destruction: `record/`
/// (where the script records what it saw), `work/` (a cwd for jobs) and the
/// script installed as `bin/pi`; `vars` point PI_TEAMS_PI_BIN at it.
struct fake_pi_tree {
  std::filesystem::path root;
  std::filesystem::path record;
  std::filesystem::path pi;
  std::map<std::string, std::string> vars;

  explicit fake_pi_tree(const char* script) {
    namespace fs = std::filesystem;
    static int counter = 0;
    root = fs::temp_directory_path()
           / ("crew-fake-pi-" + std::to_string(::getpid()) + "-"
              + std::to_string(++counter));
    fs::remove_all(root);
    record = root / "record";
    fs::create_directories(record);
    fs::create_directories(root / "work");
    pi = root / "bin" / "pi";
    fs::create_directories(pi.parent_path());
    std::ofstream{pi} << script;
    fs::permissions(pi, fs::perms::owner_all);
    vars = {{"PI_TEAMS_PI_BIN", pi.string()}, {"PATH", "/usr/bin:/bin"}};
  }

  ~fake_pi_tree() {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }

  fake_pi_tree(const fake_pi_tree&) = delete;
  fake_pi_tree& operator=(const fake_pi_tree&) = delete;
};

/// The whole file, empty when missing.
inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

} // namespace crew::test
