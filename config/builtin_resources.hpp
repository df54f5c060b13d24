#pragma once

#include <span>
#include <string_view>

namespace crew {

/// One file of the `resources/` tree, embedded into the library at build time.
struct embedded_file {
  std::string_view path;    ///< relative to `resources/`, e.g. `agents/explorer.md`
  std::string_view content; ///< the file's bytes
};

/// Returns every embedded resource file, sorted by path.
std::span<const embedded_file> builtin_resource_files() noexcept;

} // namespace crew
