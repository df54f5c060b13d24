#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

namespace crew {

/// Reads the entries of a deadletter.jsonl (a missing file has none), in
/// file order. Blank lines are skipped; an unparsable line is reported to
/// `on_unparsable` with its 1-based line number (which may throw) and skipped.
std::vector<nlohmann::json>
read_deadletters(const std::filesystem::path& path,
                 const std::function<void(size_t line)>& on_unparsable);

} // namespace crew
