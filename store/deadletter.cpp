#include "store/deadletter.hpp"

#include <string_view>

#include "store/atomic_file.hpp"

namespace crew {

std::vector<nlohmann::json>
read_deadletters(const std::filesystem::path& path,
                 const std::function<void(size_t line)>& on_unparsable) {
  std::vector<nlohmann::json> out;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return out;
  auto text = read_file(path);
  size_t line = 0;
  for (size_t pos = 0; pos < text.size();) {
    auto end = text.find('\n', pos);
    if (end == std::string::npos)
      end = text.size();
    ++line;
    auto row = std::string_view{text}.substr(pos, end - pos);
    pos = end + 1;
    if (row.empty())
      continue;
    auto entry = nlohmann::json::parse(row, nullptr, false);
    if (entry.is_discarded())
      on_unparsable(line);
    else
      out.push_back(std::move(entry));
  }
  return out;
}

} // namespace crew
