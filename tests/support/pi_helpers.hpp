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

#include "runtime/pi_invocation.hpp"

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
